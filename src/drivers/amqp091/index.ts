// The amqp091 driver (amqplib): its descriptor, as src/drivers/registry.ts lists it. Importing this
// loads no broker client: connect() imports amqplib when a pipeline uses the driver.
// See docs/drivers/amqp091.md.

import type { DriverDescriptor } from '../driver.js';
import { AMQP091_CAPABILITIES } from './capabilities.js';
import { amqp091Options, amqp091Section, type Amqp091ConnectionConfig, type Amqp091PipelineOptions } from './options.js';

export const descriptor: DriverDescriptor<Amqp091PipelineOptions, Amqp091ConnectionConfig> = {
  name: 'amqp091',
  aliases: ['amqp'],
  section: { name: 'amqp', example: 'amqp: { addr: amqp://user:password@host:5672/ }' },
  capabilities: AMQP091_CAPABILITIES,
  normalizeSection: amqp091Section,
  normalizeOptions: ({ pipeline, raw, full }) => amqp091Options(pipeline, raw, full),
  async connect({ section, logger }) {
    const { createAmqp091Connection } = await import('./connection.js');
    return createAmqp091Connection({ config: section ?? amqp091Section({}), logger: logger.child({ driver: 'amqp091' }) });
  },
  telemetry: (p) => ({ system: 'rabbitmq', destination: p.options.queue, ...(p.options.routingKey ? { attributes: { 'messaging.rabbitmq.destination.routing_key': p.options.routingKey } } : {}) }),
};
