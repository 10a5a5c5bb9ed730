// The amqp1 driver (rhea): RabbitMQ 3.x plugin, RabbitMQ 4.x native, Azure Service Bus, any AMQP 1.0
// broker. Its descriptor, as src/drivers/registry.ts lists it; importing this loads no rhea (connect()
// does). Which broker it is shows only once connected: each pipeline narrows these capabilities then.
// See docs/drivers/amqp1.md.

import type { DriverDescriptor } from '../driver.js';
import { AMQP1_CAPABILITIES } from './capabilities.js';
import { amqp1CrossCheck, amqp1Options, amqp1Section, type Amqp1ConnectionConfig, type Amqp1PipelineOptions } from './options.js';

export const descriptor: DriverDescriptor<Amqp1PipelineOptions, Amqp1ConnectionConfig> = {
  name: 'amqp1',
  aliases: [],
  section: { name: 'amqp1', example: 'amqp1: { addr: amqps://user:password@host:5671/ }' },
  capabilities: AMQP1_CAPABILITIES,
  normalizeSection: amqp1Section,
  normalizeOptions: ({ full }) => amqp1Options(full),
  crossCheck: amqp1CrossCheck,
  async connect({ section, logger }) {
    const { createAmqp1Connection } = await import('./connection.js');
    // the amqp1 driver names itself in its log lines
    return createAmqp1Connection({ config: section ?? amqp1Section({}), logger });
  },
  telemetry: (p) => ({
    system: p.options.broker === 'servicebus' ? 'servicebus' : p.options.broker === 'rabbitmq' ? 'rabbitmq' : 'amqp',
    destination: p.options.address ?? p.options.queue,
    ...(p.options.routingKey && p.options.broker === 'rabbitmq' ? { attributes: { 'messaging.rabbitmq.destination.routing_key': p.options.routingKey } } : {}),
  }),
};
