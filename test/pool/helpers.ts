// Helpers for the pool tests: a pool on a fixture worker with captured logs, job frames, pid checks.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { PoolConfig } from '../../src/config/types.js';
import { createPool } from '../../src/pool/pool.js';
import type { FollowUp, JobCallbacks, JobOutcome, PoolTimings, WorkerExitReason, WorkerJob, WorkerPool } from '../../src/pool/types.js';
import type { WorkerProtocol } from '../../src/protocol/codec.js';
import { jobrunnerProtocol } from '../../src/protocol/jobrunner/index.js';
import { recordOutput } from '../helpers/output-log.js';
import { sleep, waitFor } from '../helpers/wait.js';

export const WORKERS = new URL('../fixtures/workers/', import.meta.url).pathname;

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface TestPool {
  pool: WorkerPool;
  logs: LogLine[];
  /** pids of every worker the pool started */
  pids: number[];
  exits: { pid: number; reason: WorkerExitReason; code: number | null; signal: string | null }[];
  /** pid -> capacity of every worker that said `ready` */
  readies: Map<number, number>;
  /** start(), then wait until `count` workers (default num_workers) said `ready` */
  startReady(count?: number): Promise<void>;
  /** stop(), then assert every worker pid is gone */
  close(timeoutMs?: number): Promise<void>;
}

export function poolConfig(overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    numWorkers: 1,
    maxConcurrency: 1,
    protocol: 'jobrunner',
    maxJobs: 0,
    allocateTimeoutMs: 10_000,
    destroyTimeoutMs: 5000,
    execTtlMs: 0,
    maxWorkerMemoryMb: 0,
    ...overrides,
  };
}

const open = new Set<WorkerPool>();

/** Stops every pool a test left running (a failed or timed-out test): call from after(). */
export async function stopAllPools(): Promise<void> {
  await Promise.all([...open].map((p) => p.stop(500)));
  open.clear();
}

/** per-test bound: a test never hangs */
export const TIMEOUT = { timeout: 30_000 };

export function testPool(
  fixture: string,
  pool: Partial<PoolConfig> = {},
  extra: { env?: Record<string, string>; timings?: Partial<PoolTimings>; command?: string[]; protocol?: WorkerProtocol } = {},
): TestPool {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      recordOutput(chunk.toString('utf8'));
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const p = createPool({
    pipeline: 'test',
    command: extra.command ?? [process.execPath, join(WORKERS, fixture)],
    env: extra.env ?? {},
    pool: poolConfig(pool),
    protocol: extra.protocol ?? jobrunnerProtocol,
    logger,
    // the fixture workers send `ready`, so they take jobs at once; probation applies only to the ones
    // that do not (crash-on-start, FIXTURE_NO_READY=1)
    ...(extra.timings === undefined ? {} : { timings: extra.timings }),
  });
  open.add(p);
  const pids: number[] = [];
  const exits: TestPool['exits'] = [];
  p.on('worker-start', ({ pid }) => pids.push(pid));
  p.on('worker-exit', ({ pid, reason, code, signal }) => exits.push({ pid, reason, code, signal }));
  const readies = new Map<number, number>();
  p.on('worker-ready', ({ pid, capacity }) => readies.set(pid, capacity));
  return {
    pool: p,
    logs,
    pids,
    exits,
    readies,
    async startReady(count = poolConfig(pool).numWorkers) {
      await p.start();
      await waitFor(`${count} workers ready`, () => readies.size >= count, 20_000);
    },
    async close(timeoutMs = 2000) {
      await p.stop(timeoutMs);
      open.delete(p);
      for (const pid of pids) if (alive(pid)) throw new Error(`worker ${pid} still running after stop()`);
    },
  };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let seq = 0;
/** a job for a body (a JSON value is serialised first, as a broker body would be) */
export function testJob(body: unknown, id = `job-${++seq}`, attempt = 1): WorkerJob {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return {
    id,
    job: 'Test',
    pipeline: 'test',
    body: buf,
    contentType: undefined,
    headers: { tenant: ['acme'] },
    attempt,
    driver: 'memory',
    queue: 'test',
    messageId: id,
    redelivered: false,
    traceparent: undefined,
  };
}

/** a follow-up's body as JSON */
export function followUpJson(f: FollowUp | undefined): unknown {
  if (f === undefined) throw new Error('no follow-up');
  return JSON.parse(f.body.toString('utf8'));
}

export interface Recorder extends JobCallbacks {
  published: FollowUp[];
  touches: number;
  /** what happened, in order: "publish" / "touch" per frame, then "settled" when run() resolved */
  events: string[];
}

export function recorder(): Recorder {
  const r: Recorder = {
    published: [],
    touches: 0,
    events: [],
    onPublish(followUp) {
      r.published.push(followUp);
      r.events.push('publish');
    },
    onTouch() {
      r.touches++;
      r.events.push('touch');
    },
  };
  return r;
}

/** run() that also records "settled" in the recorder */
export async function runJob(pool: WorkerPool, job: WorkerJob, rec: Recorder = recorder()): Promise<JobOutcome> {
  const out = await pool.run(job, rec);
  rec.events.push('settled');
  return out;
}

export { sleep, waitFor };
