// The processes the benchmark measures: a raw client consumer (bench/raw/*.mjs) or jobrunner itself,
// run as the built CLI (`node dist/cli/main.js serve -c FILE`) in a child process, so its RSS and CPU
// are its own. Configs are written to a temp directory; the daemon's log goes there too.

import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

export type Driver = 'amqp091' | 'amqp1' | 'nats';
export type WorkerKind = 'node' | 'python' | 'goridge';

export interface Tuning {
  prefetch: number;
  numWorkers: number;
  maxConcurrency: number;
  multipleAck: boolean;
}

export const WORKER_COMMAND: Record<WorkerKind, string> = {
  node: `node ${join(ROOT, 'bench/workers/noop.mjs')}`,
  python: `python3 ${join(ROOT, 'bench/workers/noop.py')}`,
  goridge: `php ${join(ROOT, 'bench/workers/noop-goridge.php')}`,
};

/**
 * goridge workers take one job at a time (no job ids), so their row runs several processes instead of
 * max_concurrency: BENCH_GORIDGE_WORKERS (default 4, as a RoadRunner pool on a small machine would).
 */
export const GORIDGE_WORKERS = Number(process.env.BENCH_GORIDGE_WORKERS ?? 4);

export interface Proc {
  readonly pid: number;
  stop(): Promise<void>;
}

/** children alive now: a bench stopped by a signal stops them too (killChildren) */
const live = new Set<ChildProcess>();
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}
export function killChildren(): void {
  for (const c of live) c.kill('SIGTERM');
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** starts bench/raw/<driver>.mjs (`extra`: more of its environment); resolves once it consumes */
export async function startRaw(driver: Driver, url: string, queue: string, prefetch: number, latencyDir: string, logFile: string, extra: Record<string, string> = {}): Promise<Proc> {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [join(ROOT, `bench/raw/${driver}.mjs`)], {
    cwd: ROOT,
    stdio: ['ignore', log, log, 'ipc'],
    env: { ...process.env, BENCH_URL: url, BENCH_QUEUE: queue, BENCH_PREFETCH: String(prefetch), BENCH_LATENCY_DIR: latencyDir, ...extra },
  });
  track(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`raw ${driver} consumer did not start; see ${logFile}`)), 20_000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`raw ${driver} consumer exited (${code}); see ${logFile}`));
    });
  });
  return {
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child, 10_000);
    },
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** the durable consumer of a nats queue, in the raw client's and jobrunner's config alike */
export const NATS_CONSUMER = 'jobrunner-bench';

/** the config section that holds each driver's connection */
const CONNECTION_SECTION: Record<Driver, string> = { amqp091: 'amqp', amqp1: 'amqp1', nats: 'nats' };

/**
 * The YAML of a one-pipeline config; `tuning` undefined leaves every default alone. `natsStream`: the
 * stream of a nats queue (the queue's name is its subject; the consumer is NATS_CONSUMER).
 */
export function daemonConfig(driver: Driver, url: string, queue: string, worker: WorkerKind, port: number, tuning: Tuning | undefined, natsStream?: string): string {
  const pool =
    worker === 'goridge'
      ? `\n  pool:\n    protocol: goridge\n    num_workers: ${GORIDGE_WORKERS}`
      : tuning
        ? `\n  pool:\n    num_workers: ${tuning.numWorkers}\n    max_concurrency: ${tuning.maxConcurrency}`
        : '';
  const conf = driver === 'nats' ? [`stream: "${natsStream}"`, `subject: "${queue}"`, `consumer: "${NATS_CONSUMER}"`] : [`queue: "${queue}"`, 'durable: true'];
  if (driver === 'amqp1') conf.push('broker: rabbitmq');
  if (tuning) conf.push(`prefetch: ${tuning.prefetch}`);
  if (tuning && driver === 'amqp091') conf.push(`multiple_ack: ${tuning.multipleAck}`);
  return `version: "3"
server:
  command: "${WORKER_COMMAND[worker]}"
${CONNECTION_SECTION[driver]}:
  addr: "${url}"
http:
  address: "127.0.0.1:${port}"
jobs:
  consume: ["bench"]${pool}
  pipelines:
    bench:
      driver: ${driver}
      config:
${conf.map((l) => `        ${l}`).join('\n')}
`;
}

export interface DaemonProc extends Proc {
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/** starts `jobrunner serve` on a config; resolves once /ready answers 200 */
export async function startDaemon(dir: string, yaml: string, latencyDir: string, logFile: string): Promise<DaemonProc> {
  const file = join(dir, 'jobs.yaml');
  writeFileSync(file, yaml);
  const port = Number(/address: "127\.0\.0\.1:(\d+)"/.exec(yaml)?.[1]);
  const base = `http://127.0.0.1:${port}`;
  const log = openSync(logFile, 'a');
  // BENCH_NODE_ARGS: extra node flags for the daemon, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist/cli/main.js'), 'serve', '-c', file], {
    cwd: ROOT,
    stdio: ['ignore', log, log],
    env: { ...process.env, BENCH_LATENCY_DIR: latencyDir },
  });
  track(child);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`jobrunner exited at start; see ${logFile}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`jobrunner not ready within 30 s; see ${logFile}`);
    }
    try {
      const res = await fetch(`${base}/ready`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const post = async (what: string): Promise<void> => {
    const res = await fetch(`${base}/pipelines/bench/${what}`, { method: 'POST' });
    if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  };
  return {
    pid: child.pid ?? 0,
    pause: () => post('pause'),
    resume: () => post('resume'),
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child, 60_000);
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
