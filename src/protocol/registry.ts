// The worker protocols `pool.protocol` can name. Adding one: a folder under src/protocol/ that exports a
// WorkerProtocol (codec.ts), one line here, and the name in the `protocol` enum of src/config/schema.base.json (then npm run gen:validator)
// (test/protocol/registry.test.ts keeps the two lists equal).

import type { WorkerProtocol } from './codec.js';
import { goridgeProtocol } from './goridge/index.js';
import { jobrunnerProtocol } from './jobrunner/index.js';

export const PROTOCOLS: Readonly<Record<string, WorkerProtocol>> = Object.freeze({
  jobrunner: jobrunnerProtocol,
  goridge: goridgeProtocol,
});

/** The protocol of that name; undefined when there is none (the config schema rejects unknown names first). */
export function protocolNamed(name: string): WorkerProtocol | undefined {
  return Object.hasOwn(PROTOCOLS, name) ? PROTOCOLS[name] : undefined;
}
