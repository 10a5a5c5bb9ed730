// Helpers for the retry, poison, fault, cluster and soak tests: which brokers to run on, a daemon YAML
// builder around the scripted worker, an amqplib "admin" that publishes, counts and drains queues behind
// the daemon's back, and the message accounting (published = acked + dead-lettered + still queued).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { connect, type ChannelModel } from 'amqplib';
import { brokerUrls } from '../drivers/conformance.js';
import { FIXTURE_WORKERS, ROOT } from './daemon.js';
import { recordOutput } from './output-log.js';

export const SCRIPTED = join(FIXTURE_WORKERS, 'scripted.mjs');
export const CLI = join(ROOT, 'dist/cli/main.js');

export interface Target {
  /** e.g. "amqp091 on RabbitMQ 3.10" */
  label: string;
  driver: 'amqp091' | 'amqp1';
  url: string;
  major: number;
}

/** The broker's major version from its AMQP 0-9-1 server properties (both RabbitMQs speak 0-9-1 on the port). */
export async function brokerMajor(url: string): Promise<number> {
  const c = await connect(url);
  try {
    const props = (c as unknown as { connection: { serverProperties?: { version?: unknown } } }).connection.serverProperties;
    return Number(String(props?.version ?? '0').split('.')[0]);
  } finally {
    await c.close();
  }
}

/**
 * amqp091 on every AMQP091_URLS broker and amqp1 on every AMQP1_URLS broker of major >= minAmqp1Major
 * (RabbitMQ 3.x's plugin can neither declare nor delay over AMQP 1.0). `skip` is set when no broker is
 * configured (brokerUrls throws under CI=true instead).
 */
export async function faultTargets(options: { amqp1?: boolean; minAmqp1Major?: number } = {}): Promise<{ targets: Target[]; skip: string | false }> {
  const targets: Target[] = [];
  const a091 = brokerUrls('AMQP091_URLS');
  const a1 = options.amqp1 === false ? [] : brokerUrls('AMQP1_URLS');
  if (!a091 && !a1) return { targets, skip: 'AMQP091_URLS / AMQP1_URLS unset: run eval "$(sudo scripts/test-servers.sh)"' };
  for (const url of a091 ?? []) {
    const major = await brokerMajor(url);
    targets.push({ label: `amqp091 on RabbitMQ ${major}.x (${new URL(url).port})`, driver: 'amqp091', url, major });
  }
  for (const url of a1 ?? []) {
    const major = await brokerMajor(url);
    if (major >= (options.minAmqp1Major ?? 4)) targets.push({ label: `amqp1 on RabbitMQ ${major}.x (${new URL(url).port})`, driver: 'amqp1', url, major });
  }
  return { targets, skip: false };
}

export interface PipeSpec {
  name: string;
  queue: string;
  consume?: boolean;
  /** YAML flow text, e.g. `{ max_attempts: 3, backoff: { initial: 200ms } }` */
  retry?: string;
  deadLetter?: string;
  /** extra driver config keys as YAML flow entries, e.g. `requeue_on_fail: true` */
  config?: string;
  /** YAML flow text for this pipeline's pool */
  pool?: string;
  command?: string[];
}

export interface YamlOptions {
  target: Pick<Target, 'driver' | 'url'>;
  pipelines: PipeSpec[];
  /** the connection's addr (default target.url); a list for a cluster */
  addr?: string | string[];
  env?: Record<string, string>;
  /** jobs.pool flow text */
  pool?: string;
  http?: string;
  /** extra keys for the amqp / amqp1 section, flow entries */
  connection?: string;
  level?: string;
}

/** A daemon config around the scripted worker. */
export function daemonYaml(o: YamlOptions): string {
  const driver = o.target.driver;
  const section = driver === 'amqp091' ? 'amqp' : 'amqp1';
  const addr = o.addr ?? o.target.url;
  const lines = [
    'version: "3"',
    `server: { command: ${JSON.stringify([process.execPath, SCRIPTED])}${o.env ? `, env: ${JSON.stringify(o.env)}` : ''} }`,
    `${section}: { addr: ${JSON.stringify(addr)}${o.connection ? `, ${o.connection}` : ''} }`,
    `http: { address: ${JSON.stringify(o.http ?? '127.0.0.1:0')} }`,
    `logs: { level: ${o.level ?? 'info'} }`,
    'jobs:',
    `  consume: ${JSON.stringify(o.pipelines.filter((p) => p.consume !== false).map((p) => p.name))}`,
    `  pool: ${o.pool ?? '{ num_workers: 2, destroy_timeout: 5s, allocate_timeout: 30s }'}`,
    '  pipelines:',
  ];
  for (const p of o.pipelines) {
    const cfg = driver === 'amqp091' ? `queue: ${p.queue}, routing_key: ${p.queue}, prefetch: 10, durable: true` : `queue: ${p.queue}, prefetch: 10`;
    lines.push(`    ${p.name}:`);
    lines.push(`      driver: ${driver}`);
    if (p.command) lines.push(`      command: ${JSON.stringify(p.command)}`);
    if (p.pool) lines.push(`      pool: ${p.pool}`);
    if (p.retry) lines.push(`      retry: ${p.retry}`);
    if (p.deadLetter) lines.push(`      dead_letter: { pipeline: ${p.deadLetter} }`);
    lines.push(`      config: { ${cfg}${p.config ? `, ${p.config}` : ''} }`);
  }
  return lines.join('\n') + '\n';
}

export interface Drained {
  id: string;
  body: Buffer;
  headers: Record<string, unknown>;
  /** payload.n of a JSON body, when present */
  n?: string;
}

/** Publishes, counts and drains queues over AMQP 0-9-1, and deletes what it touched at the end. */
export class Admin {
  private readonly queues = new Set<string>();
  private constructor(
    readonly url: string,
    private conn: ChannelModel,
  ) {}

  static async open(url: string): Promise<Admin> {
    const c = await connect(url);
    c.on('error', () => undefined);
    return new Admin(url, c);
  }

  /** a unique queue-name prefix for one test */
  static prefix(what: string): string {
    return `jobrunner-test-${what}-${randomUUID().slice(0, 8)}`;
  }

  track(...names: string[]): void {
    for (const n of names) this.queues.add(n);
  }

  async queue(name: string, args: Record<string, unknown> = {}): Promise<void> {
    this.track(name);
    const ch = await this.conn.createChannel();
    try {
      await ch.assertQueue(name, { durable: true, arguments: args });
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /**
   * Publishes messages straight to `queue` (default exchange) with RoadRunner's headers, confirmed.
   * `payload` objects become JSON bodies; a Buffer is sent as it is. Returns the ids.
   */
  async publish(queue: string, jobs: Array<{ id?: string; job?: string; payload?: unknown; body?: Buffer; headers?: Record<string, unknown>; contentType?: string }>): Promise<string[]> {
    const ch = await this.conn.createConfirmChannel();
    const ids: string[] = [];
    try {
      for (const j of jobs) {
        const id = j.id ?? randomUUID();
        ids.push(id);
        const body = j.body ?? Buffer.from(JSON.stringify(j.payload ?? {}));
        ch.sendToQueue(queue, body, {
          messageId: id,
          persistent: true,
          contentType: j.contentType ?? (j.body ? 'application/octet-stream' : 'application/json'),
          headers: { rr_id: id, rr_job: j.job ?? 'Test', ...j.headers },
        });
      }
      await ch.waitForConfirms();
    } finally {
      await ch.close().catch(() => undefined);
    }
    return ids;
  }

  /** deletes a queue now, its messages with it (a fault: the queue goes away under a consumer) */
  async deleteQueue(name: string): Promise<void> {
    const ch = await this.conn.createChannel();
    try {
      await ch.deleteQueue(name);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** whether the queue exists (a passive declare) */
  async exists(queue: string): Promise<boolean> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.checkQueue(queue);
      return true;
    } catch {
      return false;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** messages ready in the queue (0 when it does not exist) */
  async count(queue: string): Promise<number> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } catch {
      return 0;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** takes every ready message off the queue (acked) */
  async drain(queue: string): Promise<Drained[]> {
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    const out: Drained[] = [];
    try {
      for (;;) {
        const m = await ch.get(queue, { noAck: true });
        if (m === false) break;
        const headers = (m.properties.headers ?? {}) as Record<string, unknown>;
        const d: Drained = { id: String(m.properties.messageId ?? headers['rr_id'] ?? ''), body: m.content, headers };
        const n = payloadN(m.content);
        if (n !== undefined) d.n = n;
        out.push(d);
      }
    } catch {
      // the queue does not exist: nothing in it
    } finally {
      await ch.close().catch(() => undefined);
    }
    return out;
  }

  private async deleteQueues(): Promise<void> {
    for (const q of this.queues) {
      const ch = await this.conn.createChannel();
      ch.on('error', () => undefined);
      await ch.deleteQueue(q).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  }

  /** closes the connection and deletes nothing; never throws */
  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }

  /** deletes every queue it declared or was told about, and closes; never throws */
  async cleanup(): Promise<void> {
    try {
      await this.deleteQueues();
    } catch {
      // the connection is gone (a broker restart test): reconnect once to delete
      try {
        this.conn = await connect(this.url);
        this.conn.on('error', () => undefined);
        await this.deleteQueues();
      } catch {
        // leave it
      }
    }
    await this.conn.close().catch(() => undefined);
  }
}

/** payload.n of a JSON body (the scripted worker's echo publishes the job's payload back) */
export function payloadN(body: Buffer): string | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as { n?: unknown; payload?: { n?: unknown } };
    if (typeof v.n === 'string') return v.n;
    return undefined;
  } catch {
    return undefined;
  }
}

/** The scripted worker's SCRIPTED_RECORD file: `<id> <attempt>` per delivery a worker received. */
export function readRecord(file: string): Array<{ id: string; attempt: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id, attempt] = l.split(' ');
      return { id: id ?? '', attempt: Number(attempt) };
    });
}

export interface Tally {
  published: number;
  /** distinct ids acked (seen in the collector queue) */
  acked: number;
  deadLettered: number;
  stillQueued: number;
  lost: number;
  /** extra copies: collector entries beyond one per id, plus ids both acked and dead-lettered/queued */
  duplicates: number;
  lostIds: string[];
}

/** published = acked + dead-lettered + still queued, by id; lost must be 0. */
export function tally(published: readonly string[], acked: readonly string[], dead: readonly string[] = [], queued: readonly string[] = []): Tally {
  const ackedSet = new Set(acked);
  const deadSet = new Set(dead);
  const queuedSet = new Set(queued);
  const lostIds = published.filter((id) => !ackedSet.has(id) && !deadSet.has(id) && !queuedSet.has(id));
  const overlaps = published.filter((id) => (ackedSet.has(id) ? 1 : 0) + (deadSet.has(id) ? 1 : 0) + (queuedSet.has(id) ? 1 : 0) > 1).length;
  return {
    published: published.length,
    acked: ackedSet.size,
    deadLettered: deadSet.size,
    stillQueued: queuedSet.size,
    lost: lostIds.length,
    duplicates: acked.length - ackedSet.size + (dead.length - deadSet.size) + overlaps,
    lostIds: lostIds.slice(0, 10),
  };
}

export function describeTally(what: string, t: Tally): string {
  return `${what}: published=${t.published} acked=${t.acked} dead_lettered=${t.deadLettered} still_queued=${t.stillQueued} lost=${t.lost} duplicates=${t.duplicates}`;
}

/** pids of this process's children running the scripted worker (the in-process daemon's workers) */
export function workerPids(script = 'scripted.mjs'): number[] {
  try {
    const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
    return out
      .split('\n')
      .filter((l) => l.includes(script))
      .map((l) => Number(l.trim().split(/\s+/)[0]))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface CliDaemon {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running; never throws */
  kill(): void;
}

/** Spawns `node dist/cli/main.js serve -c file` (the built CLI); stdout and stderr collected. */
export function spawnServe(file: string, env: NodeJS.ProcessEnv = {}): CliDaemon {
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.once('exit', () => recordOutput(out));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => out,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Resolves with the promise, or rejects after ms. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
