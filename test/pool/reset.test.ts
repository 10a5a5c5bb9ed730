// RoadRunner's `rr reset` and `rr workers` in the pool: reset() restarts the workers one at a time, each
// after the jobs it holds are done, with nothing lost; workers() reports each process; releaseQueued()
// gives back at once the jobs no worker holds.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { alive, recorder, stopAllPools, testJob, testPool, waitFor, TIMEOUT } from './helpers.js';

after(stopAllPools);

test('reset(): every worker is replaced one at a time after its jobs; every job in gets its ack out', TIMEOUT, async () => {
  const t = testPool('slow.mjs', { numWorkers: 2, maxConcurrency: 1 });
  try {
    await t.startReady();
    const before = [...t.pids];
    const ids = Array.from({ length: 12 }, (_, i) => `reset-${i}`);
    const runs = ids.map((id) => t.pool.run(testJob({ ms: 150 }, id), recorder()));
    // both workers hold a job when the reset begins
    await waitFor('two jobs on workers', () => t.pool.stats().inFlight === 2, 5000);
    const info = await t.pool.workers();
    assert.equal(info.length, 2);
    for (const w of info) {
      assert.ok(before.includes(w.pid));
      assert.equal(w.held, 1);
      assert.ok(w.heldForMs >= 0 && w.heldForMs < 10_000);
      assert.ok(w.rssBytes === null || w.rssBytes > 1024 * 1024, `rss ${String(w.rssBytes)}`);
      assert.ok(w.state === 'busy' || w.state === 'ready');
    }
    await t.pool.reset();
    const outcomes = await Promise.all(runs);
    assert.deepEqual(outcomes.map((o) => o.kind), ids.map(() => 'ack'), 'nothing failed, nothing released');
    for (const pid of before) assert.equal(alive(pid), false, `old worker ${pid} is gone`);
    const resets = t.exits.filter((e) => e.reason === 'reset');
    assert.deepEqual(resets.map((e) => e.pid).sort(), [...before].sort());
    assert.ok(resets.every((e) => e.code === 0), 'each old worker exited on its own after `stop`');
    assert.equal(t.pool.restarts, 2);
    const now = await t.pool.workers();
    assert.equal(now.length, 2);
    assert.ok(now.every((w) => !before.includes(w.pid)));
  } finally {
    await t.close();
  }
});

test('releaseQueued(): jobs no worker holds resolve as released at once', TIMEOUT, async () => {
  const t = testPool('slow.mjs', { numWorkers: 1, maxConcurrency: 1 });
  try {
    await t.startReady();
    const first = t.pool.run(testJob({ ms: 300 }, 'held'), recorder());
    const queued = [t.pool.run(testJob({ ms: 300 }, 'q1'), recorder()), t.pool.run(testJob({ ms: 300 }, 'q2'), recorder())];
    await waitFor('one held, two queued', () => t.pool.stats().inFlight === 1 && t.pool.stats().queued === 2, 5000);
    assert.equal(t.pool.releaseQueued(), 2);
    assert.deepEqual(await Promise.all(queued), [{ kind: 'released' }, { kind: 'released' }]);
    assert.deepEqual(await first, { kind: 'ack' });
    const [w] = await t.pool.workers();
    assert.equal(w?.done, 1);
  } finally {
    await t.close();
  }
});
