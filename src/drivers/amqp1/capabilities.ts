// What the amqp1 driver can do (src/drivers/driver.ts Capabilities): read by its descriptor and its pipelines.

import type { Capabilities } from '../driver.js';
import type { BrokerKind } from './broker.js';

/** the most amqp1 can do (RabbitMQ 4 / Service Bus); Amqp1Pipeline.capabilities() per broker */
export const AMQP1_CAPABILITIES: Capabilities = Object.freeze({
  inProcess: false,
  // `rejected`: the queue's dead-letter exchange, Service Bus's dead-letter queue
  nativeDeadLetter: true,
  retryLater: false,
  delays: 'any',
  readyCount: true,
  renewal: true,
});

const FIX = 'use the amqp091 driver or RabbitMQ 4';

const BY_KIND: Record<BrokerKind, Capabilities> = {
  // declare and ready count through the management node, delay queues declared on demand
  rabbitmq4: Object.freeze({ ...AMQP1_CAPABILITIES, renewal: false }),
  // 3.x: no management node (no ready count, no declare), delay queues only when they exist
  rabbitmq3: Object.freeze({ ...AMQP1_CAPABILITIES, delays: 'existing', readyCount: false, renewal: false, delayAdvice: { broker: 'RabbitMQ 3.x over AMQP 1.0', fix: FIX, docs: 'docs/drivers/amqp1-rabbitmq3.md' } }),
  // scheduled enqueue time for delays, renew-lock for long jobs
  servicebus: Object.freeze({ ...AMQP1_CAPABILITIES, readyCount: false }),
  generic: Object.freeze({ ...AMQP1_CAPABILITIES, delays: 'none', readyCount: false, renewal: false, delayAdvice: { broker: 'this AMQP 1.0 broker', fix: FIX } }),
};

/** The capabilities of one pipeline on the broker it is connected to; `rawAddress`: it set `address`. */
export function capabilitiesFor(kind: BrokerKind, rawAddress: boolean): Capabilities {
  return rawAddress ? RAW[kind] : BY_KIND[kind];
}

// a raw address: nothing to count through management, and delays need a queue or exchange (Service
// Bus schedules on any address)
const RAW: Record<BrokerKind, Capabilities> = {
  rabbitmq4: Object.freeze({ ...BY_KIND.rabbitmq4, readyCount: false, delays: 'none', delayAdvice: { broker: 'an AMQP 1.0 raw address', fix: `set queue or exchange instead of address, or ${FIX}` } }),
  rabbitmq3: Object.freeze({ ...BY_KIND.rabbitmq3, delays: 'none', delayAdvice: { broker: 'this AMQP 1.0 raw address', fix: FIX } }),
  servicebus: BY_KIND.servicebus,
  generic: BY_KIND.generic,
};
