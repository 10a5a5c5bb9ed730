// What the memory driver can do (src/drivers/driver.ts Capabilities): read by its descriptor and its pipelines.

import type { Capabilities } from '../driver.js';

export const MEMORY_CAPABILITIES: Capabilities = Object.freeze({
  inProcess: true,
  // reject(false) moves the job to the pipeline's dead-letter list
  nativeDeadLetter: true,
  retryLater: false,
  delays: 'any',
  readyCount: true,
  renewal: false,
});
