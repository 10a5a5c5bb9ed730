// Checks the schema cannot express: names that must exist (consume, dead_letter), connection sections
// that drivers need, a worker command for every pipeline, backoff bounds. Runs on schema-valid data.

import { DRIVERS, findDriver } from '../drivers/registry.js';
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
  // what the HTTP server will listen on: checked here so `validate` refuses what `serve` would
  if (typeof http.address === 'string' && !isListenAddress(http.address)) {
    add(['http', 'address'], `${JSON.stringify(http.address)} is not host:port (a port from 0 to 65535), \`off\` or empty`);
  } else if (exposed !== undefined) add(['http', 'address'], exposed);

  // every broker address must be a URL: one that is not cannot be redacted reliably nor connected to
  for (const d of DRIVERS) {
    if (d.section === undefined) continue;
    const addr = obj(root[d.section.name]).addr;
    const list = typeof addr === 'string' ? [addr] : Array.isArray(addr) ? addr : [];
    list.forEach((a, i) => {
      const segs = typeof addr === 'string' ? [d.section!.name, 'addr'] : [d.section!.name, 'addr', i];
      // an unset variable is reported already
      if (typeof a !== 'string' || parsed.envProblemPaths.has(dottedPath(segs))) return;
      const scheme = d.section!.bareHostScheme;
      const problem = urlProblem(scheme !== undefined && !a.includes('://') ? `${scheme}://${a}` : a);
      if (problem !== undefined) add(segs, problem);
    });
  }

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
    if (driver?.section !== undefined && driver.section.optional !== true && root[driver.section.name] === undefined) {
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

/** host:port with a port 0..65535 ([v6]:port too), `off` or empty */
function isListenAddress(address: string): boolean {
  if (address === '' || address === 'off') return true;
  const m = /^(?:\[[^\]]+\]|[^:\s]*):(\d{1,5})$/.exec(address.trim());
  return m !== null && Number(m[1]) <= 65535;
}

/**
 * Why a broker address is not a usable URL, or undefined. The message never repeats the address (it
 * may hold a password or key) and says how to write a secret with / + = @ in it.
 */
export function urlProblem(address: string): string | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    // a comma-separated list of URLs (some clients take one): each must be a URL
    if (address.includes(',') && address.split(',').every((a) => a.trim() !== '' && urlProblem(a.trim()) === undefined)) return undefined;
    return 'is not a valid URL: a password or key holding / + = @ : or % must be URL-encoded (/ as %2F, + as %2B, = as %3D, @ as %40, : as %3A, % as %25)';
  }
  if (url.hostname === '') return 'has no host';
  const at = address.indexOf('://');
  const authority = address.slice(at + 3).split(/[/?#]/, 1)[0] ?? '';
  if ((authority.match(/@/g)?.length ?? 0) > 1) return 'holds more than one @ before the host: a password holding @ must be URL-encoded as %40';
  return undefined;
}
