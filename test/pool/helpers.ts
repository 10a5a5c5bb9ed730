// Helpers for the pool tests: a pool on a fixture worker with captured logs, job frames, pid checks.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { PoolConfig } from '../../src/config/types.js';
import { createPool } from '../../src/pool/pool.js';
import type { JobCallbacks, JobOutcome, PoolTimings, WorkerExitReason, WorkerPool } from '../../src/pool/types.js';
import type { JobFrame, PublishFrame } from '../../src/protocol/frames.js';
import { bodyToPayload } from '../../src/protocol/payload.js';

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
  /** stop(), then assert every worker pid is gone */
  close(timeoutMs?: number): Promise<void>;
}

export function poolConfig(overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    numWorkers: 1,
    maxConcurrency: 1,
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
  extra: { env?: Record<string, string>; timings?: Partial<PoolTimings>; command?: string[] } = {},
): TestPool {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
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
    logger,
    // most tests are about dispatch, not start-up: no probation unless a test asks for it
    timings: { probationMs: 0, ...extra.timings },
  });
  open.add(p);
  const pids: number[] = [];
  const exits: TestPool['exits'] = [];
  p.on('worker-start', ({ pid }) => pids.push(pid));
  p.on('worker-exit', ({ pid, reason, code, signal }) => exits.push({ pid, reason, code, signal }));
  return {
    pool: p,
    logs,
    pids,
    exits,
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
/** a job frame for a body (a JSON value is serialised first, as a broker body would be) */
export function jobFrame(body: unknown, id = `job-${++seq}`, attempt = 1): JobFrame {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const { payload, encoding } = bodyToPayload(buf);
  return {
    type: 'job',
    id,
    job: 'Test',
    pipeline: 'test',
    payload,
    encoding,
    headers: { tenant: ['acme'] },
    attempt,
    meta: { driver: 'memory', queue: 'test', message_id: id, redelivered: false },
  };
}

export interface Recorder extends JobCallbacks {
  published: PublishFrame[];
  touches: number;
  /** what happened, in order: "publish" / "touch" per frame, then "settled" when run() resolved */
  events: string[];
}

export function recorder(): Recorder {
  const r: Recorder = {
    published: [],
    touches: 0,
    events: [],
    onPublish(frame) {
      r.published.push(frame);
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
export async function runJob(pool: WorkerPool, frame: JobFrame, rec: Recorder = recorder()): Promise<JobOutcome> {
  const out = await pool.run(frame, rec);
  rec.events.push('settled');
  return out;
}

/** waits until cond() holds, checking every 10 ms, failing after ms */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
