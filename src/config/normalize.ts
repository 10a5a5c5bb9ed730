// Turns schema-valid, cross-checked data into the Config every other part consumes: RoadRunner's
// shorthands expanded (both amqp forms, driver alias, addr string or list), durations in ms, per-pipeline
// pool merged over jobs.pool, commands as argv. Defaults come from the schema (ajv filled them in `full`);
// `raw` (as written) tells which keys the user set, for overrides and aliases.

import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { parseDuration } from '../shared/duration.js';
import { obj, type Obj } from './crossref.js';
import type {
  Amqp091PipelineOptions,
  Amqp1PipelineOptions,
  Amqp1Broker,
  Config,
  ExchangeType,
  MemoryPipelineOptions,
  PipelineConfig,
  PoolConfig,
  RetryConfig,
  TlsConfig,
} from './types.js';

function ms(value: unknown, fallback: number): number {
  if (typeof value !== 'string' && typeof value !== 'number') return fallback;
  return parseDuration(value) ?? fallback;
}
function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : fallback;
}
function num(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}
function bool(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}
/** `canonical` when the user wrote it, else the alias when they wrote that, else the default. */
function aliased(raw: Obj, full: Obj, canonical: string, alias: string, fallback: boolean): boolean {
  if (raw[canonical] === undefined && raw[alias] !== undefined) return bool(full[alias], fallback);
  return bool(full[canonical], fallback);
}

/** A shell string runs under /bin/sh -c; an argv list runs as is. */
export function toArgv(command: unknown): string[] {
  if (Array.isArray(command)) return command.map(String);
  return ['/bin/sh', '-c', String(command)];
}

function urls(addr: unknown): string[] {
  return Array.isArray(addr) ? addr.map(String) : [String(addr)];
}

function stringEnv(env: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(env))) out[k] = String(v);
  return out;
}

function tls(value: unknown): TlsConfig | undefined {
  if (value === undefined) return undefined;
  const t = obj(value);
  const out: TlsConfig = { insecureSkipVerify: bool(t.insecure_skip_verify, false) };
  // RoadRunner's samples carry `key: ""`: empty means unset
  if (str(t.cert) !== '') out.cert = str(t.cert);
  if (str(t.key) !== '') out.key = str(t.key);
  if (str(t.root_ca) !== '') out.rootCa = str(t.root_ca);
  if (str(t.client_auth_type) !== '') out.clientAuthType = str(t.client_auth_type);
  const meaningful = out.cert !== undefined || out.key !== undefined || out.rootCa !== undefined || out.insecureSkipVerify;
  return meaningful || out.clientAuthType !== undefined ? out : undefined;
}

/** `override` (schema-checked, defaults filled) wins for the keys the user wrote (`overrideRaw`). */
function pool(base: Obj, override: Obj, overrideRaw: Obj): PoolConfig {
  const pick = (key: string): unknown => (overrideRaw[key] !== undefined ? override[key] : base[key]);
  const supRaw = obj(overrideRaw.supervisor);
  const supOverride = obj(override.supervisor);
  const sup = { ...obj(base.supervisor) };
  for (const key of Object.keys(supRaw)) sup[key] = supOverride[key];
  return {
    numWorkers: num(pick('num_workers'), availableParallelism()),
    maxConcurrency: num(pick('max_concurrency'), 16),
    protocol: str(pick('protocol')) || 'jobrunner',
    maxJobs: num(pick('max_jobs'), 0),
    allocateTimeoutMs: ms(pick('allocate_timeout'), 60_000),
    destroyTimeoutMs: ms(pick('destroy_timeout'), 60_000),
    execTtlMs: ms(sup.exec_ttl, 0),
    maxWorkerMemoryMb: num(sup.max_worker_memory, 0),
  };
}

function retry(value: unknown): RetryConfig | undefined {
  if (value === undefined) return undefined;
  const r = obj(value);
  const b = obj(r.backoff);
  return {
    maxAttempts: num(r.max_attempts, 3),
    backoff: { initialMs: ms(b.initial, 1000), maxMs: ms(b.max, 300_000), multiplier: num(b.multiplier, 2), jitter: num(b.jitter, 0.2) },
  };
}

function consumerId(value: unknown, pipeline: string): string {
  const id = str(value);
  return id !== '' ? id : `jobrunner-${pipeline}-${randomBytes(3).toString('hex')}`;
}

function amqp091Options(name: string, raw: Obj, full: Obj): Amqp091PipelineOptions {
  const common = { prefetch: num(full.prefetch, 256), priority: num(full.priority, 10), redialTimeoutMs: ms(full.redial_timeout, 60_000) };
  if (String(full.version) === '2') {
    const ex = obj(full.exchange);
    const q = obj(full.queue);
    return {
      ...common,
      queue: str(q.name),
      exchange: str(ex.name, 'amqp.default'),
      exchangeType: str(ex.type, 'direct') as ExchangeType,
      exchangeDurable: bool(ex.durable, false),
      exchangeAutoDelete: bool(ex.auto_delete, false),
      exchangeDeclare: bool(ex.declare, true),
      routingKey: str(q.routing_key),
      durable: bool(q.durable, false),
      queueAutoDelete: bool(q.auto_delete, false),
      exclusive: bool(q.exclusive, false),
      consumerId: consumerId(q.consumer_id, name),
      deleteQueueOnStop: bool(q.delete_on_stop, false),
      multipleAck: bool(q.multiple_ack, true),
      requeueOnFail: bool(q.requeue_on_fail, false),
      queueHeaders: { ...obj(q.headers) },
      queueDeclare: bool(q.declare, true),
    };
  }
  const declare = bool(full.declare, true);
  return {
    ...common,
    queue: str(full.queue),
    exchange: str(full.exchange, 'amqp.default'),
    exchangeType: str(full.exchange_type, 'direct') as ExchangeType,
    exchangeDurable: bool(full.exchange_durable, false),
    exchangeAutoDelete: aliased(raw, full, 'exchange_auto_delete', 'exchange_auto_deleted', false),
    exchangeDeclare: raw.exchange_declare !== undefined ? bool(full.exchange_declare, declare) : declare,
    routingKey: str(full.routing_key),
    durable: bool(full.durable, false),
    queueAutoDelete: aliased(raw, full, 'queue_auto_delete', 'queue_auto_deleted', false),
    exclusive: bool(full.exclusive, false),
    consumerId: consumerId(full.consumer_id, name),
    deleteQueueOnStop: bool(full.delete_queue_on_stop, false),
    multipleAck: bool(full.multiple_ack, true),
    requeueOnFail: bool(full.requeue_on_fail, false),
    queueHeaders: { ...obj(full.queue_headers) },
    queueDeclare: raw.queue_declare !== undefined ? bool(full.queue_declare, declare) : declare,
  };
}

function amqp1Options(full: Obj): Amqp1PipelineOptions {
  const out: Amqp1PipelineOptions = {
    queue: str(full.queue),
    prefetch: num(full.prefetch, 256),
    priority: num(full.priority, 10),
    durable: bool(full.durable, true),
    broker: str(full.broker, 'auto') as Amqp1Broker,
    requeueOnFail: bool(full.requeue_on_fail, false),
    redialTimeoutMs: ms(full.redial_timeout, 60_000),
  };
  if (str(full.address) !== '') out.address = str(full.address);
  if (str(full.exchange) !== '') out.exchange = str(full.exchange);
  if (str(full.routing_key) !== '') out.routingKey = str(full.routing_key);
  return out;
}

function memoryOptions(full: Obj): MemoryPipelineOptions {
  return { prefetch: num(full.prefetch, 10), priority: num(full.priority, 10) };
}

/** `order`: pipeline names in file order (JS objects put integer-like keys first). */
export function normalize(file: string, rawData: unknown, fullData: unknown, order?: readonly string[]): Config {
  const raw = obj(rawData);
  const full = obj(fullData);
  const rawJobs = obj(raw.jobs);
  const jobs = obj(full.jobs);
  const basePool = obj(jobs.pool);
  const rawPipelines = obj(rawJobs.pipelines);
  const pipelinesFull = obj(jobs.pipelines);
  const consume = new Set(Array.isArray(jobs.consume) ? jobs.consume.map(String) : []);
  const server = obj(full.server);
  const names = order ?? Object.keys(pipelinesFull);

  const pipelines: PipelineConfig[] = names.map((name) => {
    const p = obj(pipelinesFull[name]);
    const rp = obj(rawPipelines[name]);
    const command = p.command ?? basePool.command ?? server.command;
    const base = {
      name,
      command: toArgv(command),
      env: { ...stringEnv(server.env), ...stringEnv(p.env) },
      pool: pool(basePool, obj(p.pool), obj(rp.pool)),
      consume: consume.has(name),
    };
    const extra: { job?: string; retry?: RetryConfig; deadLetter?: { pipeline: string } } = {};
    if (typeof p.job === 'string') extra.job = p.job;
    const r = retry(p.retry);
    if (r) extra.retry = r;
    if (p.dead_letter !== undefined) extra.deadLetter = { pipeline: str(obj(p.dead_letter).pipeline) };
    const config = obj(p.config);
    switch (p.driver) {
      case 'amqp':
      case 'amqp091':
        return { ...base, ...extra, driver: 'amqp091', options: amqp091Options(name, obj(rp.config), config) };
      case 'amqp1':
        return { ...base, ...extra, driver: 'amqp1', options: amqp1Options(config) };
      default:
        return { ...base, ...extra, driver: 'memory', options: memoryOptions(config) };
    }
  });

  const http = obj(full.http);
  const level = str(obj(full.logs).level, 'info');
  const config: Config = {
    file,
    version: str(full.version, '3'),
    http: { address: str(http.address, '127.0.0.1:2114'), ...(str(http.token) !== '' ? { token: str(http.token) } : {}) },
    logs: { level: (level === 'panic' ? 'fatal' : level) as Config['logs']['level'] },
    otel: { enabled: bool(obj(full.otel).enabled, false) },
    pipelines,
  };
  if (full.amqp !== undefined) {
    const a = obj(full.amqp);
    const t = tls(a.tls);
    config.amqp = { urls: urls(a.addr ?? 'amqp://guest:guest@127.0.0.1:5672/'), ...(t ? { tls: t } : {}) };
  }
  if (full.amqp1 !== undefined) {
    const a = obj(full.amqp1);
    const t = tls(a.tls);
    config.amqp1 = {
      urls: urls(a.addr),
      containerId: str(a.container_id) !== '' ? str(a.container_id) : `jobrunner-${hostname()}`,
      idleTimeoutMs: ms(a.idle_timeout, 60_000),
      ...(t ? { tls: t } : {}),
    };
  }
  return config;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
