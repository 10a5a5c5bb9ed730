// Checks the schema cannot express: names that must exist (consume, dead_letter), connection sections
// that drivers need, a worker command for every pipeline, backoff bounds. Runs on schema-valid data.

import { findDriver } from '../drivers/registry.js';
import { parseDuration } from '../shared/duration.js';
import { exposureProblem } from './http.js';
import { nearest, dottedPath, type Problem } from './problems.js';
import { obj } from './values.js';
import { locate, type ParsedYaml } from './yaml.js';

function duration(value: unknown): number | undefined {
  return typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : undefined;
}

function unknownPipeline(name: string, names: string[]): string {
  const near = nearest(name, names);
  if (near !== undefined) return `unknown pipeline \`${name}\`; did you mean \`${near}\`?`;
  return `unknown pipeline \`${name}\`; pipelines: ${names.join(', ')}`;
}

/** `raw`: interpolated as written; `full`: the same with the schema's defaults filled in. */
export function crossCheck(file: string, raw: unknown, full: unknown, parsed: ParsedYaml): Problem[] {
  const problems: Problem[] = [];
  const add = (segs: (string | number)[], message: string, at: 'key' | 'value' = 'value'): void => {
    const pos = locate(parsed, segs, at);
    problems.push({ file, line: pos.line, col: pos.col, path: dottedPath(segs), message, code: 'E_CONFIG_REF' });
  };
  const root = obj(raw);
  const jobs = obj(root.jobs);
  const pipelines = obj(obj(obj(full).jobs).pipelines);
  const rawPipelines = obj(jobs.pipelines);
  const names = Object.keys(pipelines);

  const http = obj(obj(full).http);
  const exposed = exposureProblem({ address: typeof http.address === 'string' ? http.address : '', token: typeof http.token === 'string' ? http.token : '', allowUnauthenticated: http.allow_unauthenticated === true });
  if (exposed !== undefined) add(['http', 'address'], exposed);

  const consume = Array.isArray(jobs.consume) ? (jobs.consume as string[]) : [];
  consume.forEach((name, i) => {
    if (!(name in pipelines)) add(['jobs', 'consume', i], `consume names ${unknownPipeline(name, names)}`);
  });

  const serverCommand = obj(root.server).command;
  const poolCommand = obj(jobs.pool).command;
  for (const name of names) {
    const p = obj(rawPipelines[name]);
    const at = ['jobs', 'pipelines', name];
    const driver = findDriver(String(p.driver));
    if (driver?.section !== undefined && root[driver.section.name] === undefined) {
      add([...at, 'driver'], `driver ${String(p.driver)} needs the top-level \`${driver.section.name}\` section (${driver.section.example})`);
    }
    for (const problem of driver?.crossCheck?.(obj(p.config)) ?? []) add([...at, problem.at], problem.message);
    // a pipeline that is not consumed at start (a dead-letter sink, a push-only pipeline) needs no worker
    if (consume.includes(name) && p.command === undefined && poolCommand === undefined && serverCommand === undefined) {
      add(at, 'no worker command: set server.command, jobs.pool.command or this pipeline\'s `command`', 'key');
    }
    const dl = obj(p.dead_letter).pipeline;
    if (typeof dl === 'string') {
      if (dl === name) add([...at, 'dead_letter', 'pipeline'], 'a pipeline cannot dead-letter to itself');
      else if (!(dl in pipelines)) add([...at, 'dead_letter', 'pipeline'], `dead_letter names ${unknownPipeline(dl, names)}`);
    }
    const backoff = obj(obj(obj(pipelines[name]).retry).backoff);
    const initial = duration(backoff.initial);
    const max = duration(backoff.max);
    if (initial !== undefined && max !== undefined && initial > max) {
      add([...at, 'retry', 'backoff'], `initial (${String(backoff.initial)}) is longer than max (${String(backoff.max)})`);
    }
  }
  return problems;
}
