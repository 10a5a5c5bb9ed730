// The configuration's public face: load a file, check one (for `jobrunner validate`), the built-in
// default, and the JSON Schema (for `jobrunner schema`).

export { loadConfig, loadHttpSection, checkConfig, checkConfigText, embeddedDefaultConfig, type CheckResult } from './load.js';
export { configSchema } from './schema.js';
export { formatProblem, type Problem } from './problems.js';
export { toArgv } from './normalize.js';
export { withHttpAddress, isLoopbackAddress } from './http.js';
export type * from './types.js';
