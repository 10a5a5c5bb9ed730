// The worker pool's public surface.
export { createPool } from './pool.js';
export type * from './types.js';
export { Reaper, type WorkerReaper } from './reaper.js';
