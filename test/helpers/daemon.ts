// Test helpers: run an in-process Daemon from YAML text (the real loader, real workers), capture its
// log lines, and wait for conditions with a bound.

import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { Metrics } from '../../src/observability/metrics.js';
import { recordOutput } from './output-log.js';
import type { Tracing } from '../../src/observability/tracing.js';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const FIXTURE_WORKERS = join(ROOT, 'test/fixtures/workers');

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export interface TestDaemon {
  daemon: Daemon;
  logs: LogLine[];
  dir: string;
  /** base URL of its HTTP server */
  url: string;
  stop(): Promise<void>;
}

/** Writes `yaml` to a temp file, loads it with the real loader and starts a Daemon on it. */
export async function startDaemon(yaml: string, options: { env?: NodeJS.ProcessEnv; tracing?: Tracing; level?: string } = {}): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-test-'));
  const file = join(dir, 'jobs.yaml');
  writeFileSync(file, yaml);
  const config = loadConfig(file, { ...process.env, ...options.env });
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      recordOutput(chunk.toString('utf8'));
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      }
      cb();
    },
  });
  const logger = pino({ level: options.level ?? 'debug', formatters: { level: (label) => ({ level: label }) } }, sink);
  const daemon = new Daemon({ config, logger, metrics: new Metrics({ defaults: false }), ...(options.tracing ? { tracing: options.tracing } : {}) });
  await daemon.start();
  let stopped = false;
  return {
    daemon,
    logs,
    dir,
    url: `http://${daemon.httpAddress ?? '127.0.0.1:0'}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { waitFor } from './wait.js';

/** The value of a counter/gauge sample in Prometheus text, 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_:]+)(\{([^}]*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const part of (m[3] ?? '').match(/[a-z_]+="[^"]*"/g) ?? []) {
      const i = part.indexOf('=');
      have[part.slice(0, i)] = part.slice(i + 2, -1);
    }
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}

export { httpJson, httpCall } from './http.js';

export function tempFile(dir: string, name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
