// Helpers for the nats driver tests: pipeline configs with unique streams, a JetStream "admin" that
// publishes, counts and deletes behind the driver's back, and private nats-server processes (own port,
// own data folder, optionally TLS) for the tests that stop or kill a server or need TLS; the shared
// server on :4222 is never touched. A private server may be a newer nats-server (2.12+, message
// scheduling) that scripts/fetch-nats-server.sh keeps in a cache outside the repository.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { PipelineConfig } from '../../src/config/types.js';
import type { NatsPipelineOptions } from '../../src/drivers/nats/options.js';
import { delayStreamName } from '../../src/drivers/nats/delay.js';
import { serverSchedules } from '../../src/drivers/nats/schedule.js';
import { FIXTURE_WORKERS } from './daemon.js';
import { freePort } from './faults.js';

export const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';

/** A nats-server binary and the version it reports, or why there is none. */
export type NatsServerBinary = { bin: string; version: string; missing?: undefined } | { missing: string };

/**
 * A nats-server of 2.12 or later (message scheduling): NATS_SERVER_LATEST_BIN, else the newest one
 * scripts/fetch-nats-server.sh left in its cache (JOBRUNNER_CACHE_DIR, default ~/.cache/jobrunner).
 * Under CI=true a test that needs it must fail when it is missing, never skip.
 */
export function latestNatsServer(): NatsServerBinary {
  const fix = 'run scripts/fetch-nats-server.sh (or set NATS_SERVER_LATEST_BIN)';
  let bin = process.env['NATS_SERVER_LATEST_BIN'] ?? '';
  if (bin === '') {
    const cache = process.env['JOBRUNNER_CACHE_DIR'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'jobrunner');
    const found = existsSync(cache)
      ? readdirSync(cache)
          .map((d) => /^nats-server-(\d+)\.(\d+)\.(\d+)$/.exec(d))
          .filter((m): m is RegExpExecArray => m !== null && serverSchedules(m[0].slice('nats-server-'.length)) && existsSync(join(cache, m[0], 'nats-server')))
          .sort((a, b) => Number(b[1]) - Number(a[1]) || Number(b[2]) - Number(a[2]) || Number(b[3]) - Number(a[3]))
      : [];
    if (found[0] === undefined) return { missing: `no nats-server 2.12+ in ${cache}: ${fix}` };
    bin = join(cache, found[0][0], 'nats-server');
  }
  let out: string;
  try {
    out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  } catch (err) {
    return { missing: `${bin} does not run (${(err as Error).message.split('\n')[0]}): ${fix}` };
  }
  const version = /v(\d+\.\d+\.\d+\S*)/.exec(out)?.[1] ?? '';
  if (!serverSchedules(version)) return { missing: `${bin} is nats-server ${version || out.trim()}, not 2.12+: ${fix}` };
  return { bin, version };
}

export type NatsPipelineConfig = PipelineConfig<NatsPipelineOptions>;

export function natsPipeline(name: string, over: Partial<NatsPipelineOptions> & { pool?: Partial<PipelineConfig['pool']> } = {}): NatsPipelineConfig {
  const { pool, ...options } = over;
  return {
    name,
    driver: 'nats',
    command: ['true'],
    env: {},
    requeueOnFail: false,
    redialTimeoutMs: 60_000,
    pool: { numWorkers: 1, maxConcurrency: 1, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 10_000, destroyTimeoutMs: 10_000, execTtlMs: 0, maxWorkerMemoryMb: 0, ...pool },
    consume: true,
    options: {
      subject: `jr.${name}`,
      stream: `JR_${name.replace(/[^A-Za-z0-9_-]/g, '_')}`,
      consumer: `jobrunner-${name}`,
      prefetch: 10,
      priority: 10,
      ackWaitMs: 30_000,
      deleteAfterAck: false,
      deleteStreamOnStop: false,
      deliverNew: false,
      rateLimit: 1000,
      declare: true,
      ...options,
    },
  };
}

/** PEM files for a test client of a TLS server */
export interface NatsClientTls {
  caFile: string;
  certFile?: string;
  keyFile?: string;
}

/** A plain JetStream client for setup and checks; tracks streams to delete. */
export class NatsAdmin {
  private nc: NatsConnection | undefined;
  private streams = new Set<string>();
  constructor(
    private readonly url: string,
    private readonly tls?: NatsClientTls,
  ) {}

  async conn(): Promise<{ nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager }> {
    this.nc ??= await connect({ servers: this.url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200, ...(this.tls ? { tls: { ...this.tls } } : {}) });
    return { nc: this.nc, js: jetstream(this.nc), jsm: await jetstreamManager(this.nc) };
  }

  /**
   * Publishes RoadRunner envelopes with these JSON payloads to `subject` (each with its own Nats-Msg-Id;
   * a publish JetStream does not answer, e.g. right after a restart, is sent again, so one that did land
   * is not stored twice); returns the ids.
   */
  async publishJobs(subject: string, payloads: unknown[]): Promise<string[]> {
    const ids: string[] = [];
    for (const p of payloads) {
      const id = randomUUID();
      const h = natsHeaders();
      h.set('content-type', 'application/json');
      const envelope = { job: 'Test', id, payload: Buffer.from(JSON.stringify(p)).toString('base64'), options: { priority: 10, pipeline: 'test', delay: 0, auto_ack: false } };
      for (let attempt = 1; ; attempt++) {
        try {
          const { js } = await this.conn();
          await js.publish(subject, JSON.stringify(envelope), { msgID: id, headers: h, timeout: 5000 });
          break;
        } catch (err) {
          if (attempt >= 10) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      ids.push(id);
    }
    return ids;
  }

  /** messages of the consumer not delivered yet plus delivered and not acked */
  async unsettled(stream: string, consumer: string): Promise<number> {
    const { jsm } = await this.conn();
    const i = await jsm.consumers.info(stream, consumer);
    return i.num_pending + i.num_ack_pending;
  }

  /** deletes the stream (and its delay stream) at cleanup */
  track(stream: string): void {
    this.streams.add(stream);
    this.streams.add(delayStreamName(stream));
  }

  async cleanup(): Promise<void> {
    try {
      const { jsm } = await this.conn();
      for (const s of this.streams) await jsm.streams.delete(s).catch(() => undefined);
    } catch {
      // the server is gone: nothing to clean
    }
    await this.nc?.close().catch(() => undefined);
    this.nc = undefined;
  }
}

/** a TLS listener for a private nats-server: PEM files (test/helpers/tls-certs.ts) */
export interface NatsServerTls {
  cert: string;
  key: string;
  /** the CA that verifies client certificates */
  ca: string;
  /** --tlsverify: only clients with a certificate signed by `ca` */
  verify?: boolean;
}

/** A private nats-server with JetStream: stop/start keep its data folder and port; kill() is SIGKILL. */
export class PrivateNats {
  readonly dir = mkdtempSync(join(tmpdir(), 'jobrunner-nats-'));
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly bin: string,
    private readonly tls: NatsServerTls | undefined,
  ) {}

  /** on a free port, with the distribution's nats-server or `bin`; tls: the server requires TLS (--tls), and with verify a client certificate */
  static async start(bin: string = NATS_SERVER, tls?: NatsServerTls): Promise<PrivateNats> {
    const s = new PrivateNats(await freePort(), bin, tls);
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.proc !== undefined) return;
    const t = this.tls;
    const tlsArgs = t === undefined ? [] : ['--tls', '--tlscert', t.cert, '--tlskey', t.key, '--tlscacert', t.ca, ...(t.verify ? ['--tlsverify'] : [])];
    const proc = spawn(this.bin, ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.dir, '-n', `jobrunner-test-${this.port}`, ...tlsArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server on ${this.port} did not start: ${log}`)), 20_000);
      proc.stderr?.on('data', (c: Buffer) => {
        log += c.toString();
        if (/Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}): ${log}`));
      });
    });
    proc.stderr?.removeAllListeners('data');
    proc.stderr?.resume();
  }

  /** graceful stop (SIGTERM), data kept */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    this.proc = undefined;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }

  async destroy(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (p !== undefined && p.exitCode === null) {
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGKILL');
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A daemon config with one consumed nats pipeline `work` (`config`: its options, YAML flow mapping body)
 * run by two scripted workers (test/fixtures/workers/scripted.mjs) that record what they did in `record`.
 */
export function scriptedNatsYaml(o: { addr: string | string[]; record: string; config: string; tls?: unknown; level?: string }): string {
  return [
    'version: "3"',
    `server: { command: ${JSON.stringify([process.execPath, join(FIXTURE_WORKERS, 'scripted.mjs')])}, env: { SCRIPTED_RECORD: ${JSON.stringify(o.record)} } }`,
    `nats: { addr: ${JSON.stringify(o.addr)}${o.tls !== undefined ? `, tls: ${JSON.stringify(o.tls)}` : ''} }`,
    'http: { address: "127.0.0.1:0" }',
    `logs: { level: ${o.level ?? 'info'} }`,
    'jobs:',
    '  consume: [work]',
    '  pool: { num_workers: 2, destroy_timeout: 5s, allocate_timeout: 30s }',
    '  pipelines:',
    '    work:',
    '      driver: nats',
    `      config: { ${o.config} }`,
  ].join('\n');
}
