// Supervision with real worker processes, one fixture per failure mode: exec_ttl, touch, crash at start
// (backoff), exit mid-job, garbage on stdout, bad frames, unknown ids, max_jobs, memory limit, spawn errors,
// stderr forwarding.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { testJob, recorder, sleep, stopAllPools, testPool, TIMEOUT, waitFor } from './helpers.js';

after(stopAllPools);

test('exec_ttl: the late job fails E_WORKER_TIMEOUT, its worker is SIGKILLed and replaced; a job beside it is released unharmed', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 2, execTtlMs: 300 });
  try {
    await t.startReady();
    const late = t.pool.run(testJob({ action: 'sleep', ms: 10_000 }), recorder());
    const beside = t.pool.run(testJob({ action: 'sleep', ms: 10_000, touch_every: 50 }), recorder());
    const [a, b] = await Promise.all([late, beside]);
    assert.equal(a.kind === 'failed' && a.code, 'E_WORKER_TIMEOUT');
    assert.deepEqual(b, { kind: 'released' }, 'the job beside it goes back to the broker without spending an attempt');
    await waitFor('exit and replacement', () => t.exits.length === 1 && t.pids.length === 2, 5000);
    assert.deepEqual(t.exits[0], { pid: t.pids[0], reason: 'timeout', code: null, signal: 'SIGKILL' });
    assert.deepEqual(await t.pool.run(testJob({ action: 'ack' }), recorder()), { kind: 'ack' }, 'the replacement works');
  } finally {
    await t.close();
  }
});

test('touch restarts exec_ttl: a job touching every 50 ms outlives a 300 ms exec_ttl', TIMEOUT, async () => {
  const t = testPool('slow.mjs', { execTtlMs: 300 });
  try {
    await t.startReady();
    const rec = recorder();
    assert.deepEqual(await t.pool.run(testJob({ ms: 1000, touch_every: 50 }), rec), { kind: 'ack' });
    assert.ok(rec.touches >= 5, `touches: ${rec.touches}`);
    assert.equal(t.exits.length, 0);
  } finally {
    await t.close();
  }
});

test('a worker that crashes at start is restarted with backoff, never in a tight loop; crashLoop counts it', TIMEOUT, async () => {
  const t = testPool('crash-on-start.mjs', { numWorkers: 2, allocateTimeoutMs: 300 }, { timings: { probationMs: 10_000 } });
  try {
    await t.pool.start();
    // no worker lives through probation, so the job never reaches one: it waits in vain, and goes back
    const out = await t.pool.run(testJob({}), recorder());
    assert.deepEqual(out.kind === 'failed' ? out.code : out.kind, 'E_ALLOCATE_TIMEOUT');
    await sleep(2000);
    // without backoff two workers dying in ~50 ms would be respawned ~80 times in 2 s
    assert.ok(t.pids.length <= 15, `spawned ${t.pids.length} workers in ~2.3 s`);
    assert.ok(t.exits.every((e) => e.reason === 'crash' && e.code === 1));
    assert.ok(t.pool.stats().crashLoop >= 3, `crashLoop ${t.pool.stats().crashLoop}`);
  } finally {
    await t.close();
  }
});

test('a worker that dies at start takes no job with it: jobs wait for one that lives through probation', TIMEOUT, async () => {
  // probation longer than any start-up on a busy machine: the crash always comes first
  const t = testPool('crash-on-start.mjs', { numWorkers: 2, allocateTimeoutMs: 1500 }, { timings: { probationMs: 10_000 } });
  try {
    await t.pool.start();
    const outs = await Promise.all([1, 2, 3, 4].map((i) => t.pool.run(testJob({}, `p${i}`), recorder())));
    // no worker lives through its probation, so none of these jobs is handed to one that dies:
    // they all come back as E_ALLOCATE_TIMEOUT (returned to the broker, no attempt spent)
    assert.deepEqual(outs.map((o) => (o.kind === 'failed' ? o.code : o.kind)), ['E_ALLOCATE_TIMEOUT', 'E_ALLOCATE_TIMEOUT', 'E_ALLOCATE_TIMEOUT', 'E_ALLOCATE_TIMEOUT']);
  } finally {
    await t.close();
  }
});

test('a job that kills a fresh worker is that job\'s failure: the worker is replaced at once, no crash loop', TIMEOUT, async () => {
  const t = testPool('exit-mid-job.mjs', { numWorkers: 1 }, { timings: { probationMs: 200 } });
  try {
    await t.startReady();
    const poison = await t.pool.run(testJob({ exit: true, after_ms: 0 }, 'poison'), recorder());
    assert.deepEqual(poison.kind === 'failed' ? poison.code : poison.kind, 'E_WORKER_CRASH');
    assert.equal(t.pool.stats().crashLoop, 0, 'a death while holding a job is not a crash at start');
    const ok = await t.pool.run(testJob({ ms: 1 }, 'next'), recorder());
    assert.equal(ok.kind, 'ack');
    assert.equal(t.pids.length, 2);
  } finally {
    await t.close();
  }
});

test('exit mid-job fails only the jobs of that worker, E_WORKER_CRASH; the other worker keeps going', TIMEOUT, async () => {
  const t = testPool('exit-mid-job.mjs', { numWorkers: 2, maxConcurrency: 2 });
  try {
    await t.startReady();
    // least-loaded dispatch in spawn order: j1 -> A, j2 -> B, j3 -> A, j4 -> B
    const runs = [
      t.pool.run(testJob({ ms: 600 }, 'j1'), recorder()),
      t.pool.run(testJob({ ms: 600 }, 'j2'), recorder()),
      t.pool.run(testJob({ exit: true, after_ms: 100 }, 'j3'), recorder()),
      t.pool.run(testJob({ ms: 600 }, 'j4'), recorder()),
    ];
    const outs = await Promise.all(runs);
    assert.deepEqual(
      outs.map((o) => (o.kind === 'failed' ? o.code : o.kind)),
      ['E_WORKER_CRASH', 'ack', 'E_WORKER_CRASH', 'ack'],
    );
    assert.match(outs[0]?.kind === 'failed' ? outs[0].error : '', /exited \(code 3\)/);
    await waitFor('a replacement', () => t.pids.length === 3, 5000);
    assert.deepEqual(t.exits.map((e) => [e.reason, e.code]), [['crash', 3]]);
    assert.equal(t.pool.stats().crashLoop, 0, 'a worker that answered is not a crash loop');
  } finally {
    await t.close();
  }
});

test('a worker killed by a signal mid-job fails its job E_WORKER_CRASH', TIMEOUT, async () => {
  const t = testPool('scripted.mjs');
  try {
    await t.startReady();
    const out = await t.pool.run(testJob({ action: 'kill' }), recorder());
    assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_CRASH');
    assert.match(out.kind === 'failed' ? out.error : '', /signal SIGKILL/);
  } finally {
    await t.close();
  }
});

test('stdout lines that are not JSON frames are logged at warn and ignored', TIMEOUT, async () => {
  const t = testPool('garbage-stdout.mjs');
  try {
    await t.startReady();
    for (let i = 0; i < 3; i++) assert.deepEqual(await t.pool.run(testJob({}), recorder()), { kind: 'ack' });
    const warned = t.logs.filter((l) => l.level === 40 && /not a frame/.test(l.msg));
    assert.equal(warned.length, 12, 'four stray lines per job (the blank line is skipped)');
    assert.deepEqual(warned.slice(0, 4).map((l) => l['line']), ['hello from a print() left in the code', '[1,2,3]', '42', '"just a string"']);
    assert.ok(warned.every((l) => l['pid'] === t.pids[0] && l['pipeline'] === 'test'));
    assert.equal(t.pids.length, 1, 'not replaced');
  } finally {
    await t.close();
  }
});

test('a frame of an unknown type is a protocol error: E_WORKER_PROTOCOL and the worker is replaced', TIMEOUT, async () => {
  const t = testPool('bad-frame.mjs');
  try {
    await t.startReady();
    const out = await t.pool.run(testJob({}), recorder());
    assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_PROTOCOL');
    assert.match(out.kind === 'failed' ? out.error : '', /unknown frame type "frobnicate"/);
    await waitFor('replacement', () => t.exits.length === 1 && t.pids.length === 2, 5000);
    assert.equal(t.exits[0]?.reason, 'protocol');
  } finally {
    await t.close();
  }
});

test('an answer for an unknown job id fails every job of that worker E_WORKER_PROTOCOL', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 2 });
  try {
    await t.startReady();
    const held = t.pool.run(testJob({ action: 'hang' }), recorder());
    const wrong = t.pool.run(testJob({ action: 'wrong-id' }), recorder());
    const outs = await Promise.all([held, wrong]);
    assert.deepEqual(outs.map((o) => o.kind === 'failed' && o.code), ['E_WORKER_PROTOCOL', 'E_WORKER_PROTOCOL']);
    await waitFor('exit', () => t.exits.length === 1, 5000);
    assert.equal(t.exits[0]?.reason, 'protocol');
  } finally {
    await t.close();
  }
});

test('max_jobs: after N jobs a worker gets stop and a replacement takes over; no job is lost', TIMEOUT, async () => {
  const t = testPool('echo.mjs', { numWorkers: 1, maxConcurrency: 2, maxJobs: 3 });
  try {
    await t.startReady();
    const outs = [];
    for (let i = 0; i < 10; i++) outs.push(await t.pool.run(testJob({ i }), recorder()));
    assert.equal(outs.filter((o) => o.kind === 'ack').length, 10);
    await waitFor('three retired workers', () => t.exits.length === 3, 5000);
    assert.deepEqual(t.exits.map((e) => [e.reason, e.code]), [['max_jobs', 0], ['max_jobs', 0], ['max_jobs', 0]]);
    assert.equal(t.pids.length, 4);
  } finally {
    await t.close();
  }
});

test('max_worker_memory: a worker over the limit is killed, its job fails E_WORKER_MEMORY', TIMEOUT, async () => {
  const t = testPool('leak-memory.mjs', { maxWorkerMemoryMb: 150 }, { timings: { memoryPollMs: 100 } });
  try {
    await t.startReady();
    const out = await t.pool.run(testJob({}), recorder());
    assert.equal(out.kind === 'failed' && out.code, 'E_WORKER_MEMORY');
    assert.match(out.kind === 'failed' ? out.error : '', /over max_worker_memory \(150 MB\)/);
    await waitFor('exit', () => t.exits.length === 1, 5000);
    assert.deepEqual([t.exits[0]?.reason, t.exits[0]?.signal], ['memory', 'SIGKILL']);
  } finally {
    await t.close();
  }
});

test('a command that cannot be spawned: start() rejects E_WORKER_SPAWN, logged with the command', TIMEOUT, async () => {
  const t = testPool('unused', {}, { command: ['/nonexistent/jobrunner-worker', '--flag'] });
  try {
    await assert.rejects(t.pool.start(), (err: Error & { code?: string }) => err.code === 'E_WORKER_SPAWN' && /ENOENT/.test(err.message));
    const logged = t.logs.find((l) => l['code'] === 'E_WORKER_SPAWN');
    assert.equal(logged?.['command'], '/nonexistent/jobrunner-worker --flag');
    await sleep(300);
    assert.ok(t.pool.stats().crashLoop >= 1);
  } finally {
    await t.close();
  }
});

test('stderr is forwarded to the log line by line with pipeline, pid and stream', TIMEOUT, async () => {
  const t = testPool('noisy-stderr.mjs');
  try {
    await t.startReady();
    await t.pool.run(testJob({}, 'noisy-1'), recorder());
    await waitFor('stderr lines', () => t.logs.some((l) => l.msg === 'noisy: half a line'), 2000);
    const lines = t.logs.filter((l) => l['stream'] === 'stderr');
    assert.deepEqual(lines.map((l) => l.msg), ['noisy: starting up', 'noisy: working on noisy-1', 'noisy: half a line']);
    assert.ok(lines.every((l) => l.level === 30 && l['pid'] === t.pids[0] && l['pipeline'] === 'test'));
  } finally {
    await t.close();
  }
});
