// What the nats driver can do (src/drivers/driver.ts Capabilities): read by its descriptor and its pipelines.

import type { Capabilities } from '../driver.js';

export const NATS_CAPABILITIES: Capabilities = Object.freeze({
  inProcess: false,
  // JetStream has no dead-lettering: reject(false) is term()
  nativeDeadLetter: false,
  // nak(delay): the server hands the same message back, its delivery count is the attempt; a nak
  // cannot change the message's headers, so a nack with headers is re-published instead
  retryLater: { maxDelayMs: 7 * 24 * 3600 * 1000, headers: false },
  // any delay: the server's message scheduling (2.12+, a stream that allows it), else a delay stream and its mover
  delays: 'any',
  // the consumer's num_pending
  readyCount: true,
  // working() before ack_wait runs out while a delivery is held
  renewal: true,
});
