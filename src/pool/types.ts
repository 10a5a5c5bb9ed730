// What src/pipelines/ sees of a worker pool: run a job on a worker, get its outcome. Jobs and follow-ups
// are protocol-neutral (src/protocol/codec.ts); which protocol the workers speak is the daemon's choice.

import type { WorkerReaper } from './reaper.js';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { FollowUp, WorkerJob, WorkerProtocol } from '../protocol/codec.js';

export type { FollowUp, WorkerJob };

type Headers = Record<string, string[]>;

export type FailureCode = 'E_WORKER_CRASH' | 'E_WORKER_TIMEOUT' | 'E_WORKER_MEMORY' | 'E_WORKER_PROTOCOL' | 'E_ALLOCATE_TIMEOUT';

export type JobOutcome =
  | { kind: 'ack' }
  | { kind: 'nack'; error: string; requeue?: boolean; delayMs?: number; headers?: Headers }
  /** the worker died, timed out, broke the protocol, or none was free in time */
  | { kind: 'failed'; code: FailureCode; error: string }
  /** never handed to a worker (the pool stopped first): give it back to the broker */
  | { kind: 'released' };

export interface JobCallbacks {
  /** a follow-up job the worker asked for, in order; the pipeline publishes it and waits before settling */
  onPublish(followUp: FollowUp): void;
  /** a touch frame: the pool has already restarted exec_ttl; drivers with locks renew them */
  onTouch(): void;
}

export type WorkerState = 'starting' | 'ready' | 'busy' | 'stopping';

export interface PoolStats {
  /** live processes by state */
  workers: Record<WorkerState, number>;
  /** jobs on workers */
  inFlight: number;
  /** jobs waiting for a free slot */
  queued: number;
  /** consecutive failed starts (0 when healthy) */
  crashLoop: number;
  /** why the last worker failed to start (while crashLoop > 0): for /health and status */
  lastError?: string;
}

/**
 * why a worker went: crash (exited on its own), timeout (exec_ttl), memory, protocol (broke it),
 * max_jobs, restart (it asked to be replaced), start_timeout (no handshake answer in time), stop, spawn_error
 */
export type WorkerExitReason = 'crash' | 'timeout' | 'memory' | 'protocol' | 'max_jobs' | 'restart' | 'reset' | 'start_timeout' | 'stop' | 'spawn_error';

/** One worker process as an operator sees it (`jobrunner workers`, GET /workers). */
export interface WorkerInfo {
  workerId: number;
  pid: number;
  state: WorkerState;
  /** jobs it holds now */
  held: number;
  /** how long it has held the oldest of them, ms (0 when it holds none) */
  heldForMs: number;
  /** jobs it answered (ack or nack) */
  done: number;
  /** resident memory in bytes (Linux /proc); null when it cannot be read */
  rssBytes: number | null;
  /** ms epoch when it was spawned */
  startedAt: number;
}

/** Events a pool emits (for logs, metrics and health). */
export interface PoolEvents {
  'worker-start': (info: { pid: number; workerId: number }) => void;
  /** the worker said `ready` (or answered the handshake): it takes up to `capacity` jobs from now on */
  'worker-ready': (info: { pid: number; workerId: number; capacity: number }) => void;
  'worker-exit': (info: { pid: number; workerId: number; reason: WorkerExitReason; code: number | null; signal: string | null }) => void;
}

export interface WorkerPool {
  /**
   * spawns num_workers processes; resolves once all are spawned (does not wait for jobs). Rejects with
   * E_WORKER_SPAWN only when every first spawn failed (e.g. command not found); call stop() then.
   */
  start(): Promise<void>;
  /**
   * Runs one job: waits for a free slot (up to allocate_timeout), hands it to a worker, resolves with
   * the worker's answer or the failure. Never rejects. exec_ttl starts when the job is handed over.
   */
  run(job: WorkerJob, callbacks: JobCallbacks): Promise<JobOutcome>;
  stats(): PoolStats;
  /** every live worker process */
  workers(): Promise<WorkerInfo[]>;
  /** worker processes that exited for any reason but the pool's stop (crash, timeout, max_jobs, reset, ...) */
  readonly restarts: number;
  /**
   * Restarts the workers gracefully, one at a time (RoadRunner's `rr reset`): each stops taking jobs,
   * finishes what it holds and exits while its replacement starts; resolves when the last one has gone.
   * Nothing is lost: queued jobs wait for the others. A reset asked while one runs joins it.
   */
  reset(): Promise<void>;
  /** jobs waiting for a slot (no worker holds them) resolve as `released` now; returns how many */
  releaseQueued(): number;
  /**
   * Sends `stop` to every worker, waits up to timeoutMs for them to exit (or the protocol's stopTimeoutMs,
   * when shorter), then SIGTERM, killGraceMs later SIGKILL, and waits killWaitMs more: bounded whatever
   * the workers do. Jobs still queued resolve as `released`; jobs on workers resolve as `failed`
   * (E_WORKER_CRASH) if their worker goes before answering. Idempotent.
   */
  stop(timeoutMs: number): Promise<void>;
  on<E extends keyof PoolEvents>(event: E, listener: PoolEvents[E]): unknown;
}

/** What createPool (src/pool/pool.ts) takes. */
export interface PoolOptions {
  pipeline: string;
  /** argv: command[0] is run with command.slice(1) */
  command: string[];
  /** added to process.env, before the protocol's own variables */
  env: Record<string, string>;
  /** how the workers are spoken to (src/protocol/registry.ts) */
  protocol: WorkerProtocol;
  /** the workers' working folder (default: the daemon's) */
  cwd?: string;
  pool: PoolConfig;
  logger: Logger;
  /** told every worker's process group, so no worker outlives the daemon (reaper.ts); none in unit tests */
  reaper?: WorkerReaper;
  /** for tests; production uses the defaults */
  timings?: Partial<PoolTimings>;
}

export interface PoolTimings {
  /** first restart delay after a quick death, doubling up to restartMaxMs (default 100) */
  restartInitialMs: number;
  /** default 30000 */
  restartMaxMs: number;
  /** a worker that lived this long or answered a job resets the crash loop (default 10000) */
  healthyAfterMs: number;
  /**
   * a new worker gets jobs only once it has lived this long (default 500): a worker that dies at start
   * takes no job with it and counts towards the crash loop; one that dies holding a job was killed by
   * that job and is replaced at once
   */
  probationMs: number;
  /** RSS poll period for max_worker_memory (default 1000) */
  memoryPollMs: number;
  /** stop(): wait between SIGTERM and SIGKILL (default 2000, the shutdown budget's termGraceMs) */
  killGraceMs: number;
  /** stop(): wait after SIGKILL for the exit to be seen (default 1000, the shutdown budget's killWaitMs) */
  killWaitMs: number;
  /**
   * a job held this long with no frame at all from its worker since it was sent logs one warning per
   * worker (default 60000): the commonest beginner mistake is a worker that does not flush stdout
   */
  silentJobWarnMs: number;
}
