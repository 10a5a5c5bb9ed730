// Pool hardening (cases 3, 6 and 14 of the hostile-input review): a worker that closes its stdout but runs
// on is dead (its job fails, it is replaced); max_worker_memory measures the worker's whole process tree
// (a `sh -c` command's child); a job held a long while with no frame at all is warned about once per worker.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TIMEOUT, WORKERS, alive, recorder, stopAllPools, testJob, testPool, waitFor } from './helpers.js';

after(stopAllPools);

test('case 3: a worker that closes stdout and keeps running (exec_ttl 0): its job fails, the worker is replaced, the pool goes on', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, execTtlMs: 0 });
  try {
    await t.startReady();
    const first = t.pids[0]!;
    const out = await t.pool.run(testJob({ action: 'close-stdout' }), recorder());
    assert.equal(out.kind, 'failed');
    assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_CRASH');
    assert.match(out.kind === 'failed' ? out.error : '', /closed its stdout/);
    await waitFor('the worker killed', () => !alive(first), 5000);
    assert.ok(t.logs.some((l) => /closed its stdout/.test(l.msg)), 'a clear log line');
    // the replacement serves the next job
    const next = await t.pool.run(testJob({ action: 'ack' }), recorder());
    assert.equal(next.kind, 'ack');
    assert.equal(t.pids.length, 2);
  } finally {
    await t.close();
  }
});

test('case 6: max_worker_memory holds for a worker started through a shell (the whole process tree is measured)', TIMEOUT, async () => {
  // `; exit` keeps the shell from exec-ing node: the shell's own RSS is tiny, its child grows
  const command = ['/bin/sh', '-c', `${process.execPath} ${join(WORKERS, 'leak-memory.mjs')}; exit $?`];
  const t = testPool('unused', { maxWorkerMemoryMb: 150 }, { command, timings: { memoryPollMs: 100 } });
  try {
    await t.startReady();
    const out = await t.pool.run(testJob({}), recorder());
    assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_MEMORY');
    assert.match(out.kind === 'failed' ? out.error : '', /over max_worker_memory \(150 MB\)/);
  } finally {
    await t.close();
  }
});

test('case 14: a job held with no answer at all is warned about once per worker ("does the worker flush stdout?")', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 4 }, { timings: { silentJobWarnMs: 300 } });
  try {
    await t.startReady();
    const r1 = recorder();
    const r2 = recorder();
    void t.pool.run(testJob({ action: 'hang' }), r1);
    void t.pool.run(testJob({ action: 'hang' }), r2);
    await waitFor('the warning', () => t.logs.some((l) => /no answer from its worker/.test(l.msg)), 10_000);
    // several sweeps later, still one line for this worker
    await new Promise((r) => setTimeout(r, 800));
    const warnings = t.logs.filter((l) => /no answer from its worker/.test(l.msg));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg, /does the worker flush stdout/);
    assert.equal(warnings[0]!['pid'], t.pids[0]);
  } finally {
    await t.close(500);
  }
});

test('case 14: a worker that answers (or touches) is not warned about', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1 }, { timings: { silentJobWarnMs: 300 } });
  try {
    await t.startReady();
    const out = await t.pool.run(testJob({ action: 'sleep', ms: 1000, touch_every: 50 }), recorder());
    assert.equal(out.kind, 'ack');
    assert.equal(t.logs.filter((l) => /no answer from its worker/.test(l.msg)).length, 0);
  } finally {
    await t.close();
  }
});
