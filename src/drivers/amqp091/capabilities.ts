// What the amqp091 driver can do (src/drivers/driver.ts Capabilities): read by its descriptor and its pipelines.

import type { Capabilities } from '../driver.js';

export const AMQP091_CAPABILITIES: Capabilities = Object.freeze({
  inProcess: false,
  // basic.nack(requeue=false): the queue's dead-letter exchange (or the broker drops it)
  nativeDeadLetter: true,
  retryLater: false,
  // per-delay TTL queues that dead-letter back (declared on demand)
  delays: 'any',
  readyCount: true,
  renewal: false,
});
