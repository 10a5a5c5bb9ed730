// What the parts of one pool share (pool.ts builds it; queue, dispatch and supervision read and update
// it): the settings, the live workers and two counters. No behaviour here.

import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Chunk, WorkerProtocol } from '../protocol/codec.js';
import type { JobOutcome, PoolTimings } from './types.js';
import { SHUTDOWN_PHASES } from '../shared/shutdown.js';
import type { WorkerProcess } from './worker.js';

export const DEFAULT_TIMINGS: PoolTimings = {
  restartInitialMs: 100,
  restartMaxMs: 30_000,
  healthyAfterMs: 10_000,
  probationMs: 500,
  memoryPollMs: 1000,
  killGraceMs: SHUTDOWN_PHASES.termGraceMs,
  killWaitMs: SHUTDOWN_PHASES.killWaitMs,
  silentJobWarnMs: 60_000,
};

export const ACK: JobOutcome = Object.freeze({ kind: 'ack' });
export const RELEASED: JobOutcome = Object.freeze({ kind: 'released' });

export interface PoolContext {
  readonly pipeline: string;
  readonly cfg: PoolConfig;
  readonly timings: PoolTimings;
  /** the pool's logger (bound to the pipeline) */
  readonly log: Logger;
  readonly protocol: WorkerProtocol;
  /** protocol.encodeStop(), encoded once */
  readonly stopFrame: Chunk;
  /** every worker process not yet closed, in spawn order */
  readonly workers: Set<WorkerProcess>;
  /** stop() was called: nothing new is spawned or dispatched */
  stopRequested: boolean;
  /** jobs on workers */
  inFlight: number;
}

/** true while a worker may not get its first job: no ready (or handshake answer) yet, and in probation */
export function waitingToStart(ctx: PoolContext, w: WorkerProcess, now: number): boolean {
  if (w.announced) return false;
  if (ctx.protocol.handshake !== undefined) return true;
  return !w.answered && w.startedAt > now - ctx.timings.probationMs;
}
