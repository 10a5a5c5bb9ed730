// The nats driver (NATS JetStream, @nats-io/jetstream): its descriptor, as src/drivers/registry.ts lists
// it. Importing this loads no NATS client: connect() imports it when a pipeline uses the driver.
// See docs/drivers/nats.md.

import type { DriverDescriptor } from '../driver.js';
import { NATS_CAPABILITIES } from './capabilities.js';
import { natsCrossCheck, natsOptions, natsSection, type NatsConnectionConfig, type NatsPipelineOptions } from './options.js';

export const descriptor: DriverDescriptor<NatsPipelineOptions, NatsConnectionConfig> = {
  name: 'nats',
  aliases: [],
  // RoadRunner's nats driver too refuses to start without the global section
  // the client takes a bare host[:port] as nats://host[:port] (RoadRunner's docs write `addr: "demo.nats.io"`)
  section: { name: 'nats', example: 'nats: { addr: nats://127.0.0.1:4222 }', bareHostScheme: 'nats' },
  capabilities: NATS_CAPABILITIES,
  normalizeSection: natsSection,
  normalizeOptions: ({ pipeline, full }) => natsOptions(pipeline, full),
  crossCheck: natsCrossCheck,
  async connect({ section, logger }) {
    const { createNatsConnection } = await import('./connection.js');
    return createNatsConnection({ config: section ?? natsSection({ addr: 'nats://127.0.0.1:4222' }), logger });
  },
  telemetry: (p) => ({ system: 'nats', destination: p.options.subject }),
};
