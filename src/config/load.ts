// Loading a configuration file: read -> parse YAML (positions kept) -> interpolate ${VAR} -> validate
// with the JSON Schema (defaults filled in on a clone) -> cross-reference checks -> normalize -> freeze.
// checkConfig() reports every problem; loadConfig() throws one JobrunnerError listing them.

import { closeSync, openSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isMap, isScalar, stringify } from 'yaml';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import { crossCheck } from './crossref.js';
import { protocolWarnings } from './protocols.js';
import { deepFreeze, normalize } from './normalize.js';
import { formatProblem, problemsError, sortProblems, type Problem } from './problems.js';
import { setAsideRoadRunner, type Warning } from './roadrunner.js';
import { packageRoot, schemaRootKeys, validateSchema } from './schema.js';
import type { Config, HttpConfig, PipelineConfig } from './types.js';
import { parseYaml, type ParsedYaml } from './yaml.js';

export interface CheckResult {
  /** present when there is no problem */
  config?: Config;
  problems: Problem[];
  /** what is accepted but not used, or used with RoadRunner's default (validate prints them; serve logs them) */
  warnings: Warning[];
}

/** Every problem of the file (empty and a Config when it is good). Never throws for a bad file. */
export function checkConfig(path: string, env: NodeJS.ProcessEnv = process.env): CheckResult {
  let text: string;
  try {
    text = readCapped(path, MAX_CONFIG_BYTES);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err);
    return { problems: [{ file: path, line: 0, col: 0, path: '', message: `cannot read the configuration: ${reason}`, code: 'E_CONFIG_READ' }], warnings: [] };
  }
  return checkConfigText(path, text, env);
}

/** A configuration file is a few KB; past this it is a mistake (`-c /dev/zero`, a log file), not a config. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * The file as UTF-8, read in chunks up to `max` bytes: a device or a huge file is refused without being
 * read whole (the size reported by stat means nothing for /dev/zero or a pipe).
 */
function readCapped(path: string, max: number): string {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > max) throw new Error(`the file is larger than ${max / (1024 * 1024)} MB: is it really the configuration?`);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** As checkConfig, for text already in hand (`path` names it in problems and becomes Config.file). */
export function checkConfigText(path: string, text: string, env: NodeJS.ProcessEnv = process.env): CheckResult {
  const { parsed, problems: yamlProblems } = parseYaml(path, text, env);
  if (!parsed) return { problems: sortProblems(yamlProblems), warnings: [] };
  const problems = [...yamlProblems];
  const data = parsed.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    problems.push({ file: path, line: 1, col: 1, path: '', message: 'the configuration must be a mapping of keys (version, jobs, ...)', code: 'E_CONFIG_SCHEMA' });
    return { problems: sortProblems(problems), warnings: [] };
  }
  const raw = structuredClone(data) as Record<string, unknown>;
  const setAside = setAsideRoadRunner(path, raw, parsed, schemaRootKeys());
  const warnings = sortProblems([...setAside, ...protocolWarnings(path, raw, parsed)]);
  const full = structuredClone(raw);
  giveEveryPipelineAConfig(full);
  problems.push(...validateSchema(path, full, parsed));
  // cross-references are checked even when the schema found problems, so one run lists everything;
  // on data the schema rejected they may not apply, and then they are skipped rather than guessed
  try {
    problems.push(...crossCheck(path, raw, full, parsed));
  } catch {
    // shapes the cross-check cannot read are already schema problems
  }
  if (problems.length > 0) return { problems: sortProblems(problems), warnings };
  const config = deepFreeze({ ...normalize(resolve(path), raw, full, pipelineOrder(parsed)), warnings: warnings.map(formatProblem) });
  sources.set(config, deepFreeze(raw));
  return { config, problems: [], warnings };
}

/** The data each Config came from (interpolated, before defaults), for pipelines declared at run time. */
const sources = new WeakMap<Config, object>();

/**
 * A pipeline declared at run time (RoadRunner's jobs.Declare: a map of strings holding name, driver and
 * the driver's keys) as the file would have it: checked with the same schema and cross-references as
 * the file (so "16" is 16 and an unknown key is an error), with the file's pool and server defaults, and
 * consumed. Throws E_CONFIG_SCHEMA listing every problem.
 */
export function declaredPipeline(config: Config, settings: Readonly<Record<string, string>>): { pipeline: PipelineConfig; config: Config } {
  const { name, driver, ...options } = settings;
  if (!name) throw new JobrunnerError('E_CONFIG_SCHEMA', 'a declared pipeline needs a name');
  if (!driver) throw new JobrunnerError('E_CONFIG_SCHEMA', `declared pipeline ${JSON.stringify(name)} needs a driver`);
  const data = structuredClone(sources.get(config) ?? {}) as { jobs?: { pipelines?: Record<string, unknown>; consume?: unknown } };
  const jobs = (data.jobs ??= {});
  const pipelines = (jobs.pipelines ??= {});
  if (name in pipelines) throw new JobrunnerError('E_CONFIG_SCHEMA', `a pipeline named ${JSON.stringify(name)} exists already`);
  pipelines[name] = { driver, config: options };
  jobs.consume = [...(Array.isArray(jobs.consume) ? (jobs.consume as unknown[]) : []), name];
  // the data is already interpolated: {} keeps any `${` left in a value from being read again
  const file = `<jobs.Declare ${name}>`;
  const result = checkConfigText(file, stringify(data), {});
  const declared = result.config?.pipelines.find((p) => p.name === name);
  if (!declared) {
    const mine = result.problems.filter((p) => p.path === '' || p.path.startsWith(`jobs.pipelines.${name}`));
    const lines = (mine.length > 0 ? mine : result.problems).map((p) => `${p.path}: ${p.message}`);
    throw new JobrunnerError('E_CONFIG_SCHEMA', `declared pipeline ${JSON.stringify(name)} is not valid: ${lines.join('; ')}`, { details: lines });
  }
  // the whole file with it: its connection settings (a section the file lacks gets RoadRunner's default)
  return { pipeline: declared, config: result.config as Config };
}

/** Loads and checks a file; throws JobrunnerError (E_CONFIG_*) listing every problem. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const result = checkConfig(path, env);
  if (result.config === undefined || result.problems.length > 0) throw problemsError(path, result.problems);
  return result.config;
}

/**
 * The configuration `jobrunner serve` uses when no file is given and none is found: one memory pipeline
 * `default`, consumed, 2 workers running the Node.js example worker, HTTP on 127.0.0.1:2114.
 */
export function embeddedDefaultConfig(): Config {
  const worker = join(packageRoot(), 'examples', 'node', 'worker.mjs');
  const yaml = [
    'version: "3"',
    'http: { address: "127.0.0.1:2114" }',
    // argv, not a shell string: the path is absolute and may hold spaces
    `server: { command: ${JSON.stringify([process.execPath, worker])} }`,
    'jobs:',
    '  consume: [default]',
    '  pool: { num_workers: 2 }',
    '  pipelines:',
    '    default:',
    '      driver: memory',
    '      config: { prefetch: 10, priority: 10 }',
  ].join('\n');
  const result = checkConfigText('<embedded>', yaml, {});
  if (!result.config) throw problemsError('<embedded>', result.problems);
  const config = deepFreeze({ ...result.config, file: '<embedded>' });
  sources.set(config, sources.get(result.config) ?? {});
  return config;
}

/**
 * ajv fills a pipeline's `config: {}` default only after its driver's if/then has run, so that
 * driver's defaults would be skipped: put the empty mapping in first (on the clone).
 */
function giveEveryPipelineAConfig(data: object): void {
  const pipelines = (data as { jobs?: { pipelines?: unknown } }).jobs?.pipelines;
  if (pipelines === null || typeof pipelines !== 'object') return;
  for (const p of Object.values(pipelines as Record<string, unknown>)) {
    if (p !== null && typeof p === 'object' && !Array.isArray(p) && !('config' in p)) (p as Record<string, unknown>).config = {};
  }
}

function pipelineOrder(parsed: ParsedYaml): string[] | undefined {
  const root = parsed.doc.contents;
  if (!isMap(root)) return undefined;
  const jobs = root.items.find((p) => isScalar(p.key) && p.key.value === 'jobs')?.value;
  if (!isMap(jobs)) return undefined;
  const pipelines = jobs.items.find((p) => isScalar(p.key) && p.key.value === 'pipelines')?.value;
  if (!isMap(pipelines)) return undefined;
  return pipelines.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key));
}

/**
 * Only the control API's part of a file (http.address, http.token), for the commands that talk to a
 * running daemon (status, pause, resume, workers, reset): a variable left unset elsewhere in the file (a
 * broker password the operator's shell does not have) must not stop them. An http section in RoadRunner's
 * HTTP-plugin shape is not the control API, as for serve.
 */
export function loadHttpSection(path: string, env: NodeJS.ProcessEnv = process.env): HttpConfig {
  let text: string;
  try {
    text = readCapped(path, MAX_CONFIG_BYTES);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err);
    throw problemsError(path, [{ file: path, line: 0, col: 0, path: '', message: `cannot read the configuration: ${reason}`, code: 'E_CONFIG_READ' }]);
  }
  const { parsed, problems } = parseYaml(path, text, env);
  const mine = problems.filter((p) => p.code === 'E_CONFIG_YAML' || p.path === 'http' || p.path.startsWith('http.'));
  if (!parsed || mine.length > 0) throw problemsError(path, mine.length > 0 ? mine : problems);
  const data = parsed.data;
  const http = data !== null && typeof data === 'object' ? (data as { http?: unknown }).http : undefined;
  const section = http !== null && typeof http === 'object' && !Array.isArray(http) ? (http as Record<string, unknown>) : {};
  if (Object.keys(section).some((k) => !['address', 'token', 'allow_unauthenticated'].includes(k))) return { address: '127.0.0.1:2114' };
  const address = section.address === undefined ? '127.0.0.1:2114' : String(section.address);
  const token = section.token === undefined || section.token === null ? '' : String(section.token);
  return { address, ...(token !== '' ? { token } : {}) };
}
