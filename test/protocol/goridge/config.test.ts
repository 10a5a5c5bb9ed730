// `pool.protocol: goridge` in the configuration: accepted in jobs.pool and a pipeline's pool, and a
// max_concurrency above 1 is named once as used as 1 (goridge answers carry no job id), where it is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigText, formatProblem } from '../../../src/config/index.js';
import { ONE_JOB_PROTOCOLS } from '../../../src/config/protocols.js';
import { PROTOCOLS } from '../../../src/protocol/registry.js';

function check(yaml: string): { problems: string[]; warnings: string[]; protocols?: Record<string, [string, number]> } {
  const r = checkConfigText('jobs.yaml', yaml, {});
  const out: { problems: string[]; warnings: string[]; protocols?: Record<string, [string, number]> } = {
    problems: r.problems.map(formatProblem),
    warnings: r.warnings.map(formatProblem),
  };
  if (r.config) out.protocols = Object.fromEntries(r.config.pipelines.map((p) => [p.name, [p.pool.protocol, p.pool.maxConcurrency]]));
  return out;
}

const head = 'version: "3"\nserver: { command: "php consumer.php" }\n';

test('the protocols that give one job at a time are the registry\'s non-multiplexed ones', () => {
  assert.deepEqual(
    Object.values(PROTOCOLS)
      .filter((p) => !p.multiplexed)
      .map((p) => p.name)
      .sort(),
    [...ONE_JOB_PROTOCOLS].sort(),
  );
});

test('protocol goridge in jobs.pool, no max_concurrency: no warning', () => {
  const r = check(head + 'jobs:\n  consume: [a]\n  pool: { protocol: goridge }\n  pipelines:\n    a: { driver: memory }\n');
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.protocols?.['a']?.[0], 'goridge');
});

test('max_concurrency above 1 with goridge: one warning where it is written', () => {
  const r = check(head + 'jobs:\n  consume: [a, b]\n  pool:\n    protocol: goridge\n    max_concurrency: 8\n  pipelines:\n    a: { driver: memory }\n    b: { driver: memory }\n');
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, [
    'jobs.yaml:7:22 jobs.pool.max_concurrency: max_concurrency: 8 is used as 1 with protocol goridge: its answers carry no job id, so a worker holds one job at a time (scale with num_workers)',
  ]);
});

test("a pipeline's own pool: its protocol with the shared max_concurrency, or its own max_concurrency", () => {
  const r = check(
    head +
      'jobs:\n  consume: [a, b, c]\n  pool: { max_concurrency: 4 }\n  pipelines:\n' +
      '    a: { driver: memory, pool: { protocol: goridge } }\n' +
      '    b: { driver: memory, pool: { protocol: goridge, max_concurrency: 2 } }\n' +
      '    c: { driver: memory }\n',
  );
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, [
    'jobs.yaml:7:44 jobs.pipelines.a.pool.protocol: max_concurrency: 4 (from jobs.pool) is used as 1 with protocol goridge: its answers carry no job id, so a worker holds one job at a time (scale with num_workers)',
    'jobs.yaml:8:70 jobs.pipelines.b.pool.max_concurrency: max_concurrency: 2 is used as 1 with protocol goridge: its answers carry no job id, so a worker holds one job at a time (scale with num_workers)',
  ]);
  assert.deepEqual(r.protocols, { a: ['goridge', 4], b: ['goridge', 2], c: ['jobrunner', 4] });
});

test('an unknown protocol is refused with the known ones named', () => {
  const r = check(head + 'jobs:\n  consume: [a]\n  pool: { protocol: roadrunner }\n  pipelines:\n    a: { driver: memory }\n');
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0] as string, /jobs\.pool\.protocol: .*(jobrunner.*goridge|goridge.*jobrunner)/);
});
