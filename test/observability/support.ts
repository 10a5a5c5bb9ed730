// Helpers for the observability, HTTP and CLI tests: a Config object built in code (no loader), an
// in-process Daemon on it with captured log lines, a bounded waitFor, and a Prometheus text reader.

import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Config, PipelineConfig, PoolConfig, RetryConfig } from '../../src/config/types.js';
import type { Amqp091PipelineOptions } from '../../src/drivers/amqp091/options.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { Tracing } from '../../src/observability/tracing.js';
import { httpCall, httpJson } from '../helpers/http.js';


export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const OBS_WORKER = join(ROOT, 'test/observability/fixtures/obs-worker.mjs');

export function pool(overrides: Partial<PoolConfig> = {}): PoolConfig {
  return { numWorkers: 1, maxConcurrency: 1, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 10_000, destroyTimeoutMs: 5_000, execTtlMs: 0, maxWorkerMemoryMb: 0, ...overrides };
}

export const FAST_RETRY: RetryConfig = { maxAttempts: 2, backoff: { initialMs: 10, maxMs: 50, multiplier: 2, jitter: 0 } };

export interface PipelineSpec {
  name: string;
  consume?: boolean;
  pool?: Partial<PoolConfig>;
  retry?: RetryConfig;
  deadLetter?: string;
}

/** a memory pipeline served by the fixture worker, which writes what it receives to `out` */
export function memoryPipeline(spec: PipelineSpec, out: string): PipelineConfig {
  return {
    name: spec.name,
    driver: 'memory',
    command: [process.execPath, OBS_WORKER],
    env: { OBS_OUT: out },
    pool: pool(spec.pool),
    consume: spec.consume ?? true,
    requeueOnFail: false,
    redialTimeoutMs: 0,
    options: { prefetch: 10, priority: 0 },
    ...(spec.retry ? { retry: spec.retry } : {}),
    ...(spec.deadLetter ? { deadLetter: { pipeline: spec.deadLetter } } : {}),
  };
}

export function amqp091Options(queue: string, overrides: Partial<Amqp091PipelineOptions> = {}): Amqp091PipelineOptions {
  return {
    queue,
    exchange: '',
    exchangeType: 'direct',
    exchangeDurable: false,
    exchangeAutoDelete: false,
    exchangeDeclare: false,
    routingKey: queue,
    prefetch: 10,
    priority: 0,
    durable: false,
    queueAutoDelete: false,
    exclusive: false,
    consumerId: '',
    deleteQueueOnStop: true,
    multipleAck: false,
    queueHeaders: {},
    queueDeclare: true,
    ...overrides,
  };
}

export function config(pipelines: PipelineConfig[], extra: Partial<Config> = {}): Config {
  return { file: '<test>', workdir: process.cwd(), warnings: [], version: '3', http: { address: '127.0.0.1:0' }, logs: { level: 'debug' }, otel: { enabled: false }, connections: {}, pipelines, ...extra };
}

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export interface Running {
  daemon: Daemon;
  url: string;
  logs: LogLine[];
  /** the file the fixture worker writes its jobs to */
  out: string;
  dir: string;
  /** the jobs the fixture workers received so far */
  received(): Array<{ id: string; pipeline: string; attempt: number; traceparent: string | null }>;
  stop(): Promise<void>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'jobrunner-obs-'));
}

/** Starts a Daemon on the pipelines `build(out)` returns; `out` is the fixture workers' file. */
export async function runDaemon(build: (out: string) => Config, options: { tracing?: Tracing } = {}): Promise<Running> {
  const dir = tempDir();
  const out = join(dir, 'received.ndjson');
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, sink);
  const daemon = new Daemon({ config: build(out), logger, metrics: new Metrics({ defaults: false }), ...(options.tracing ? { tracing: options.tracing } : {}) });
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    daemon,
    url: `http://${daemon.httpAddress ?? ''}`,
    logs,
    out,
    dir,
    received: () =>
      existsSync(out)
        ? readFileSync(out, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as { id: string; pipeline: string; attempt: number; traceparent: string | null })
        : [],
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { waitFor } from '../helpers/daemon.js';

/** Parsed Prometheus text: every sample as {name, labels, value}. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples of `name` whose labels include `labels` (0 when none). */
export function metric(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await httpCall('GET', `${url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(res.text);
}

export function http(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return httpJson(method, url, body, headers);
}

/** broker URLs from scripts/test-servers.sh, or a skip reason (a failure under CI=true) */
export function brokerUrls(variable: 'AMQP091_URLS' | 'AMQP1_URLS'): { urls: string[] } | { skip: string } {
  const urls = (process.env[variable] ?? '').split(/\s+/).filter((u) => u !== '');
  if (urls.length > 0) return { urls };
  if (process.env['CI'] === 'true') throw new Error(`${variable} is not set (run: eval "$(sudo scripts/test-servers.sh)")`);
  return { skip: `${variable} is not set: run eval "$(sudo scripts/test-servers.sh)"` };
}
