// Turns schema-valid, cross-checked data into the Config every other part consumes: RoadRunner's
// shorthands expanded (driver aliases; each driver's own forms by its descriptor's normaliser),
// durations in ms, per-pipeline pool merged over jobs.pool, commands as argv. Defaults come from the
// schema (ajv filled them in `full`); `raw` (as written) tells which keys the user set, for overrides and aliases.

import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { DRIVERS, driverFor } from '../drivers/registry.js';
import type { Config, PipelineConfig, PoolConfig, RetryConfig } from './types.js';
import { boolOf, msOf, num, numOf, obj, str, strOf, type Obj } from './values.js';

/** A shell string runs under /bin/sh -c; an argv list runs as is. */
export function toArgv(command: unknown): string[] {
  if (Array.isArray(command)) return command.map(String);
  return ['/bin/sh', '-c', String(command)];
}

function stringEnv(env: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(env))) out[k] = String(v);
  return out;
}

/** `override` (schema-checked, defaults filled) wins for the keys the user wrote (`overrideRaw`). */
function pool(base: Obj, override: Obj, overrideRaw: Obj): PoolConfig {
  const from = (key: string): Obj => (overrideRaw[key] !== undefined ? override : base);
  const supRaw = obj(overrideRaw.supervisor);
  const supOverride = obj(override.supervisor);
  const sup = { ...obj(base.supervisor) };
  for (const key of Object.keys(supRaw)) sup[key] = supOverride[key];
  return {
    // the one default the schema cannot hold: it depends on the machine
    numWorkers: num(from('num_workers').num_workers, availableParallelism()),
    maxConcurrency: numOf(from('max_concurrency'), 'max_concurrency'),
    protocol: strOf(from('protocol'), 'protocol'),
    maxJobs: numOf(from('max_jobs'), 'max_jobs'),
    allocateTimeoutMs: msOf(from('allocate_timeout'), 'allocate_timeout'),
    destroyTimeoutMs: msOf(from('destroy_timeout'), 'destroy_timeout'),
    execTtlMs: msOf(sup, 'exec_ttl'),
    maxWorkerMemoryMb: numOf(sup, 'max_worker_memory'),
  };
}

function retry(value: unknown): RetryConfig | undefined {
  if (value === undefined) return undefined;
  const r = obj(value);
  const b = obj(r.backoff);
  return {
    maxAttempts: numOf(r, 'max_attempts'),
    backoff: { initialMs: msOf(b, 'initial'), maxMs: msOf(b, 'max'), multiplier: numOf(b, 'multiplier'), jitter: numOf(b, 'jitter') },
  };
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
      // no command: a pipeline that is never consumed (a dead-letter sink); resuming it is refused
      command: command === undefined ? [] : toArgv(command),
      env: { ...stringEnv(server.env), ...stringEnv(p.env) },
      pool: pool(basePool, obj(p.pool), obj(rp.pool)),
      consume: consume.has(name),
    };
    const extra: { job?: string; retry?: RetryConfig; deadLetter?: { pipeline: string } } = {};
    if (typeof p.job === 'string') extra.job = p.job;
    const r = retry(p.retry);
    if (r) extra.retry = r;
    if (p.dead_letter !== undefined) extra.deadLetter = { pipeline: str(obj(p.dead_letter).pipeline) };
    const driver = driverFor(str(p.driver));
    const normalized = driver.normalizeOptions({ pipeline: name, raw: obj(rp.config), full: obj(p.config) });
    return { ...base, ...extra, driver: driver.name, requeueOnFail: normalized.requeueOnFail, redialTimeoutMs: normalized.redialTimeoutMs, options: normalized.options };
  });

  const http = obj(full.http);
  const level = strOf(obj(full.logs), 'level');
  const config: Config = {
    file,
    workdir: dirname(file),
    version: strOf(full, 'version'),
    http: {
      address: strOf(http, 'address'),
      ...(boolOf(http, 'allow_unauthenticated') ? { allowUnauthenticated: true } : {}),
      ...(str(http.token) !== '' ? { token: str(http.token) } : {}),
    },
    logs: {
      level: (level === 'panic' ? 'fatal' : level) as Config['logs']['level'],
      ...logOutput(obj(full.logs)),
    },
    otel: { enabled: boolOf(obj(full.otel), 'enabled') },
    connections: sections(full),
    pipelines,
    warnings: [],
  };
  if (full.rpc !== undefined) {
    const r = obj(full.rpc);
    config.rpc = { listen: strOf(r, 'listen'), allowUnauthenticated: boolOf(r, 'allow_unauthenticated') };
  }
  return config;
}

/** each driver's top-level section, normalised by its descriptor, when the file has it */
function sections(full: Obj): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const d of DRIVERS) {
    if (d.section === undefined || d.normalizeSection === undefined || full[d.section.name] === undefined) continue;
    out[d.section.name] = d.normalizeSection(obj(full[d.section.name]));
  }
  return out;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

/** RoadRunner's logs keys: `encoding` decides, else `mode: development` means console; JSON otherwise. */
function logOutput(logs: Obj): Pick<Config['logs'], 'encoding' | 'output'> {
  const encoding = logs.encoding === 'console' || logs.encoding === 'json' ? logs.encoding : logs.mode === 'development' ? 'console' : 'json';
  const output = str(logs.output, 'stdout');
  return { ...(encoding === 'console' ? { encoding } : {}), ...(output !== 'stdout' ? { output } : {}) };
}
