// How many jobs a worker holds: what its `ready` frame announces, capped by pool.max_concurrency; one at
// a time without an announcement, so a serial worker never has a job timing out behind another one.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { recorder, stopAllPools, testJob, testPool, TIMEOUT } from './helpers.js';
import type { JobOutcome } from '../../src/pool/types.js';

after(stopAllPools);

/** runs `jobs` slow jobs at once; returns the in-flight count right after, and checks it never grows */
async function holdAtOnce(t: ReturnType<typeof testPool>, jobs: number, ms: number): Promise<{ first: number; outs: JobOutcome[]; most: number }> {
  let most = 0;
  const runs = Array.from({ length: jobs }, (_, i) =>
    t.pool.run(testJob({ action: 'sleep', ms }, `c-${i}`), recorder()).then((o) => {
      most = Math.max(most, t.pool.stats().inFlight);
      return o;
    }),
  );
  // dispatch to a ready worker is synchronous: what is in flight now is what the worker was given
  const first = t.pool.stats().inFlight;
  assert.equal(t.pool.stats().queued, jobs - first);
  return { first, outs: await Promise.all(runs), most };
}

test('a worker that announces 8 gets 8 jobs at once and no more', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 256 }, { env: { FIXTURE_MAX_CONCURRENCY: '8' } });
  try {
    await t.startReady();
    assert.deepEqual([...t.readies.values()], [8]);
    const { first, outs, most } = await holdAtOnce(t, 20, 300);
    assert.equal(first, 8);
    assert.ok(most <= 8, `at most 8 held, saw ${most}`);
    assert.equal(outs.filter((o) => o.kind === 'ack').length, 20);
  } finally {
    await t.close();
  }
});

test('a worker that announces 100 with pool.max_concurrency 4 gets 4', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 4 }, { env: { FIXTURE_MAX_CONCURRENCY: '100' } });
  try {
    await t.startReady();
    assert.deepEqual([...t.readies.values()], [4]);
    const { first, outs, most } = await holdAtOnce(t, 10, 200);
    assert.equal(first, 4);
    assert.ok(most <= 4, `at most 4 held, saw ${most}`);
    assert.equal(outs.filter((o) => o.kind === 'ack').length, 10);
  } finally {
    await t.close();
  }
});

test('a worker without a ready frame gets one job at a time, after its probation', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 256 }, { env: { FIXTURE_NO_READY: '1' }, timings: { probationMs: 300 } });
  try {
    // the probation starts when the worker is spawned, inside start(): measured from before it, a job
    // handed over only after the probation can never look early, however slow the machine (1 ms: the
    // timer's rounding)
    const started = performance.now();
    await t.pool.start();
    const runs = Array.from({ length: 3 }, (_, i) => t.pool.run(testJob({ action: 'sleep', ms: 50 }, `n-${i}`), recorder()));
    assert.equal(t.pool.stats().inFlight, 0, 'nothing before probation');
    assert.equal(t.pool.stats().workers.starting, 1);
    const first = await runs[0];
    const waited = performance.now() - started;
    assert.ok(waited >= 299, `the first job waited for the probation (300 ms), waited ${waited.toFixed(1)} ms`);
    assert.equal(first?.kind, 'ack');
    assert.ok(t.pool.stats().inFlight <= 1);
    assert.equal((await Promise.all(runs)).filter((o) => o.kind === 'ack').length, 3);
    assert.equal(t.readies.size, 0);
  } finally {
    await t.close();
  }
});

test('exec_ttl counts only while a job is on a free slot: a serial worker, exec_ttl 5s, five 2-second jobs all acked', { timeout: 60_000 }, async () => {
  const t = testPool('serial.mjs', { numWorkers: 1, maxConcurrency: 256, execTtlMs: 5000 });
  try {
    await t.pool.start();
    const outs = await Promise.all(Array.from({ length: 5 }, (_, i) => t.pool.run(testJob({ ms: 2000 }, `s-${i}`), recorder())));
    assert.deepEqual(outs, Array.from({ length: 5 }, () => ({ kind: 'ack' })));
    assert.equal(t.exits.length, 0, 'no worker was killed');
  } finally {
    await t.close();
  }
});
