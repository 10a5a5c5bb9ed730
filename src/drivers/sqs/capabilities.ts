// What the sqs driver can do (src/drivers/driver.ts Capabilities): read by its descriptor and its pipelines.

import type { Capabilities } from '../driver.js';
import { MAX_VISIBILITY_S } from './options.js';

export const SQS_CAPABILITIES: Capabilities = Object.freeze({
  inProcess: false,
  // reject(false): handed back until the queue's redrive policy moves it (retain_failed_jobs: left in the
  // queue; neither: deleted, which the pipeline says at start)
  nativeDeadLetter: true,
  // ChangeMessageVisibility on the same message: SQS counts the receive, so the redrive policy works.
  // SQS allows 12 h of invisibility from the first receive (each delivery clamps to what is left);
  // attributes cannot be changed on a message in the queue, so nack headers need a new message
  retryLater: Object.freeze({ maxDelayMs: (MAX_VISIBILITY_S - 60) * 1000, headers: false }),
  // DelaySeconds up to 900 s, re-delayed on receipt past that
  delays: 'any',
  readyCount: true,
  // visibility extension while held; touch extends at once
  renewal: true,
});

/** FIFO queues take no per-message delay; retries still go by ChangeMessageVisibility. */
export const SQS_FIFO_CAPABILITIES: Capabilities = Object.freeze({
  ...SQS_CAPABILITIES,
  delays: 'none',
  delayAdvice: { broker: 'an SQS FIFO queue (no per-message delay)', fix: 'use a standard queue', docs: 'docs/drivers/sqs.md' },
});
