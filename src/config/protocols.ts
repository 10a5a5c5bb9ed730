// What validate says about a pool's worker protocol. A protocol whose answers carry no job id (goridge)
// gives a worker one job at a time whatever `max_concurrency` says: a value above 1 is accepted, used as 1,
// and named once as a warning where it is written. Runs on the data as written (before defaults).

import { dottedPath } from './problems.js';
import type { Warning } from './roadrunner.js';
import { obj, type Obj } from './values.js';
import { locate, type ParsedYaml } from './yaml.js';

/**
 * The protocols (src/protocol/registry.ts) that do not multiplex: `multiplexed: false` there.
 * test/protocol/goridge/config.test.ts keeps this list and the registry in step.
 */
export const ONE_JOB_PROTOCOLS: readonly string[] = ['goridge'];

export function protocolWarnings(file: string, raw: Obj, parsed: ParsedYaml): Warning[] {
  const jobs = obj(raw.jobs);
  const base = obj(jobs.pool);
  const out: Warning[] = [];
  const seen = new Set<string>();
  const warn = (segs: string[], message: string): void => {
    const path = dottedPath(segs);
    if (seen.has(path)) return;
    seen.add(path);
    const pos = locate(parsed, segs, 'value');
    out.push({ file, line: pos.line, col: pos.col, path, message, code: 'W_CONFIG' });
  };
  const check = (pool: Obj, poolPath: string[] | undefined): void => {
    const ownProtocol = poolPath !== undefined && pool.protocol !== undefined;
    const ownConcurrency = poolPath !== undefined && pool.max_concurrency !== undefined;
    const protocol = ownProtocol ? pool.protocol : base.protocol;
    const concurrency = ownConcurrency ? pool.max_concurrency : base.max_concurrency;
    if (typeof protocol !== 'string' || !ONE_JOB_PROTOCOLS.includes(protocol)) return;
    if (typeof concurrency !== 'number' || concurrency <= 1) return;
    const message = (from: string) =>
      `max_concurrency: ${concurrency}${from} is used as 1 with protocol ${protocol}: its answers carry no job id, so a worker holds one job at a time (scale with num_workers)`;
    if (ownConcurrency) warn([...(poolPath as string[]), 'max_concurrency'], message(''));
    else if (ownProtocol) warn([...(poolPath as string[]), 'protocol'], message(' (from jobs.pool)'));
    else warn(['jobs', 'pool', 'max_concurrency'], message(''));
  };
  const pipelines = obj(jobs.pipelines);
  const names = Object.keys(pipelines);
  if (names.length === 0) check(base, undefined);
  for (const name of names) check(obj(obj(pipelines[name]).pool), ['jobs', 'pipelines', name, 'pool']);
  return out;
}
