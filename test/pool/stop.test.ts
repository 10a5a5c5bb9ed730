// stop(): intake stops, queued jobs are released, workers get `stop` then SIGTERM then SIGKILL, and
// nothing is left behind (no worker process, no timer).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { alive, testJob, recorder, stopAllPools, testPool, TIMEOUT, waitFor } from './helpers.js';

after(stopAllPools);

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('stop() lets held jobs finish, releases queued ones, answers later run() with released; idempotent', TIMEOUT, async () => {
  const before = timers();
  const t = testPool('slow.mjs', { numWorkers: 1, maxConcurrency: 1, execTtlMs: 5000, maxWorkerMemoryMb: 500 });
  await t.startReady();
  const held = t.pool.run(testJob({ ms: 300 }), recorder());
  const queued = [t.pool.run(testJob({ ms: 300 }), recorder()), t.pool.run(testJob({ ms: 300 }), recorder())];
  assert.equal(t.pool.stats().queued, 2);
  const stopping = t.pool.stop(5000);
  assert.equal(t.pool.stop(1), stopping, 'the same promise');
  assert.deepEqual(await Promise.all(queued), [{ kind: 'released' }, { kind: 'released' }]);
  assert.deepEqual(await t.pool.run(testJob({}), recorder()), { kind: 'released' });
  await stopping;
  assert.deepEqual(await held, { kind: 'ack' }, 'the worker finished what it held');
  assert.deepEqual(t.exits.map((e) => [e.reason, e.code, e.signal]), [['stop', 0, null]]);
  assert.equal(alive(t.pids[0] ?? 0), false);
  assert.equal(timers(), before, 'no timer left');
  await t.close();
});

test('a worker that ignores stop and SIGTERM is SIGKILLed, and no process remains', TIMEOUT, async () => {
  const t = testPool('ignores-sigterm.mjs', { numWorkers: 2 }, { timings: { killGraceMs: 500 } });
  await t.startReady();
  assert.deepEqual(await t.pool.run(testJob({}), recorder()), { kind: 'ack' });
  await t.pool.stop(300);
  assert.equal(t.pids.length, 2);
  for (const pid of t.pids) assert.equal(alive(pid), false, `worker ${pid} is gone`);
  assert.deepEqual(t.exits.map((e) => [e.reason, e.signal]), [['stop', 'SIGKILL'], ['stop', 'SIGKILL']]);
  assert.ok(t.logs.some((l) => /SIGTERM ignored/.test(l.msg)), 'SIGTERM was sent first');
  assert.ok(t.logs.some((l) => /sending SIGKILL/.test(l.msg)));
  await t.close();
});

test('a job still held when stop() gives up fails E_WORKER_CRASH (SIGTERM ends a worker that does not answer)', TIMEOUT, async () => {
  const t = testPool('scripted.mjs');
  await t.startReady();
  const hung = t.pool.run(testJob({ action: 'hang' }), recorder());
  await waitFor('job in flight', () => t.pool.stats().inFlight === 1, 2000);
  await t.pool.stop(200);
  const out = await hung;
  assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_CRASH');
  assert.deepEqual(t.exits.map((e) => [e.reason, e.signal]), [['stop', 'SIGTERM']]);
  await t.close();
});

test('stop() during a crash loop spawns nothing more and ends cleanly', TIMEOUT, async () => {
  const t = testPool('crash-on-start.mjs', { numWorkers: 2 });
  await t.pool.start();
  await waitFor('crash loop', () => t.pool.stats().crashLoop >= 2, 3000);
  await t.pool.stop(500);
  const spawned = t.pids.length;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(t.pids.length, spawned, 'no spawn after stop');
  await t.close();
});

test('stop() before start(): start() spawns nothing and leaves no timer', TIMEOUT, async () => {
  const before = timers();
  const t = testPool('echo.mjs', { numWorkers: 2, execTtlMs: 1000, maxWorkerMemoryMb: 100 });
  await t.pool.stop(100);
  await t.pool.start();
  assert.equal(t.pids.length, 0);
  assert.deepEqual(await t.pool.run(testJob({}), recorder()), { kind: 'released' });
  assert.equal(timers(), before);
  await t.close();
});
