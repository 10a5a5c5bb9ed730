// The pool's normal path with real worker processes: every job in gets exactly one answer out, across
// concurrency settings; environment; publish/touch ordering; payload encodings; FIFO queue and
// allocate_timeout.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobOutcome } from '../../src/pool/types.js';
import { bodyToPayload } from '../../src/protocol/payload.js';
import { followUpJson, testJob, recorder, runJob, stopAllPools, testPool, TIMEOUT } from './helpers.js';

after(stopAllPools);

for (const [numWorkers, maxConcurrency, jobs] of [
  [1, 1, 200],
  [2, 4, 1000],
  [3, 64, 5000],
] as const) {
  test(`${jobs} jobs in = ${jobs} acks out (${numWorkers} workers x ${maxConcurrency})`, TIMEOUT, async () => {
    const t = testPool('echo.mjs', { numWorkers, maxConcurrency });
    try {
      await t.startReady();
      const ids = Array.from({ length: jobs }, (_, i) => `n-${numWorkers}-${i}`);
      let maxInFlight = 0;
      const runs = ids.map((id) => {
        const p = t.pool.run(testJob({ i: id }, id), recorder());
        maxInFlight = Math.max(maxInFlight, t.pool.stats().inFlight);
        return p;
      });
      const outcomes = await Promise.all(runs);
      assert.equal(outcomes.length, jobs);
      assert.equal(outcomes.filter((o) => o.kind === 'ack').length, jobs);
      assert.ok(maxInFlight <= numWorkers * maxConcurrency, `in flight ${maxInFlight} over capacity`);
      assert.equal(maxInFlight, numWorkers * maxConcurrency, 'every slot was used');
      const s = t.pool.stats();
      assert.equal(s.inFlight, 0);
      assert.equal(s.queued, 0);
      assert.equal(s.workers.ready, numWorkers);
      assert.equal(t.pids.length, numWorkers, 'no worker was replaced');
    } finally {
      await t.close();
    }
  });
}

test('the worker gets the configured env and JOBRUNNER_* variables, and the frame as sent', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 3, execTtlMs: 60_000 }, { env: { SCRIPTED_FOO: 'bar' } });
  try {
    await t.startReady();
    const rec = recorder();
    const frame = testJob({ action: 'frame' }, 'env-1', 4);
    assert.deepEqual(await t.pool.run(frame, rec), { kind: 'ack' });
    assert.equal(rec.published.length, 1);
    const got = followUpJson(rec.published[0]) as { frame: Record<string, unknown>; env: Record<string, string> };
    delete got.env['JOBRUNNER_TEST_OUTPUT_DIR']; // the test runner's own (scripts/run-tests.mjs), inherited
    assert.deepEqual(got.env, {
      SCRIPTED_FOO: 'bar',
      JOBRUNNER_PIPELINE: 'test',
      JOBRUNNER_WORKER_ID: '1',
      JOBRUNNER_PROTOCOL: '1',
      JOBRUNNER_MAX_CONCURRENCY: '3',
      RR_MODE: 'jobs',
    });
    assert.equal(got.frame['attempt'], 4);
    assert.deepEqual(got.frame['headers'], { tenant: ['acme'] });
    assert.equal(typeof got.frame['deadline'], 'string', 'exec_ttl sets a deadline');
    assert.ok(Date.parse(got.frame['deadline'] as string) > Date.now());
  } finally {
    await t.close();
  }
});

test('publish frames reach onPublish in order, before the ack resolves run()', TIMEOUT, async () => {
  const t = testPool('publish.mjs', { numWorkers: 2, maxConcurrency: 4 });
  try {
    await t.startReady();
    const recs = Array.from({ length: 20 }, () => recorder());
    const outs = await Promise.all(recs.map((rec, i) => runJob(t.pool, testJob({ count: 3, pipeline: 'audit' }, `pub-${i}`), rec)));
    assert.ok(outs.every((o) => o.kind === 'ack'));
    recs.forEach((rec, i) => {
      assert.deepEqual(rec.events, ['publish', 'publish', 'publish', 'settled']);
      assert.deepEqual(
        rec.published.map((f) => [f.pipeline, (followUpJson(f) as { n: number }).n, (followUpJson(f) as { parent: string }).parent]),
        [0, 1, 2].map((n) => ['audit', n, `pub-${i}`]),
      );
    });
  } finally {
    await t.close();
  }
});

test('nack frames carry error, requeue, delay (as ms) and headers', TIMEOUT, async () => {
  const t = testPool('nack.mjs');
  try {
    await t.startReady();
    assert.deepEqual(await t.pool.run(testJob({}), recorder()), { kind: 'nack', error: 'nacked by fixture' });
    assert.deepEqual(await t.pool.run(testJob({ error: 'SMTP 451', requeue: true, delay: 1.5, headers: { k: ['v'] } }), recorder()), {
      kind: 'nack',
      error: 'SMTP 451',
      requeue: true,
      delayMs: 1500,
      headers: { k: ['v'] },
    });
    assert.deepEqual(await t.pool.run(testJob({ requeue: false }), recorder()), { kind: 'nack', error: 'nacked by fixture', requeue: false });
  } finally {
    await t.close();
  }
});

test('payload encodings reach the worker intact: json, text, base64, empty, 16 MiB', TIMEOUT, async () => {
  const t = testPool('scripted.mjs', { numWorkers: 1, maxConcurrency: 2 });
  try {
    await t.startReady();
    const big = 'b'.repeat(16 * 1024 * 1024);
    const cases: [string, Buffer][] = [
      ['json', Buffer.from('{"action":"echo","x":[1,"é"]}')],
      ['json', Buffer.from('{"action":"echo",\n"multi":"line"}')],
      ['text', Buffer.from('just text, not json')],
      ['base64', Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a])],
      ['text', Buffer.alloc(0)],
      ['json', Buffer.from(JSON.stringify({ action: 'echo', big }))],
      ['base64', Buffer.concat([Buffer.from([0xff]), Buffer.alloc(16 * 1024 * 1024, 0x41)])],
    ];
    for (const [encoding, body] of cases) {
      const rec = recorder();
      const frame = testJob(body);
      assert.equal(bodyToPayload(body).encoding, encoding);
      // payloads that are not JSON objects carry no action: the scripted worker just acks them
      const out: JobOutcome = await t.pool.run(frame, rec);
      assert.deepEqual(out, { kind: 'ack' });
      if (encoding === 'json') {
        const pub = rec.published[0];
        assert.ok(pub, 'echo published');
        assert.equal(pub.contentType, 'application/json');
        assert.deepEqual(pub.body.toString(), JSON.stringify(JSON.parse(body.toString())));
      }
    }
  } finally {
    await t.close();
  }
});

test('text and base64 payloads arrive as they were sent (echo worker publishes them back)', TIMEOUT, async () => {
  // the echo action is chosen by the job name here: a dedicated tiny command avoids a JSON payload
  const t = testPool('scripted.mjs', {}, {
    command: [
      process.execPath,
      '-e',
      `const rl=require('readline').createInterface({input:process.stdin});rl.on('line',l=>{const f=JSON.parse(l);if(f.type!=='job')return process.exit(0);` +
        `process.stdout.write(JSON.stringify({type:'publish',id:f.id,pipeline:'echo',job:'E',payload:f.payload,encoding:f.encoding})+'\\n'+JSON.stringify({type:'ack',id:f.id})+'\\n')})`,
    ],
  });
  try {
    await t.pool.start();
    for (const body of [Buffer.from('plain text ü'), Buffer.from([0, 1, 2, 0xff]), Buffer.alloc(0), Buffer.alloc(16 * 1024 * 1024 + 3, 0xfe)]) {
      const rec = recorder();
      assert.deepEqual(await t.pool.run(testJob(body), rec), { kind: 'ack' });
      const pub = rec.published[0];
      assert.ok(pub);
      assert.ok(pub.body.equals(body), `body of ${body.length} bytes round-trips`);
    }
  } finally {
    await t.close();
  }
});

test('jobs queue FIFO when every slot is full; allocate_timeout fails the ones that wait too long', TIMEOUT, async () => {
  const t = testPool('slow.mjs', { numWorkers: 1, maxConcurrency: 2, allocateTimeoutMs: 400 });
  try {
    await t.startReady();
    const order: string[] = [];
    const run = (id: string, ms: number) =>
      t.pool.run(testJob({ ms }, id), recorder()).then((o) => {
        order.push(`${id}:${o.kind === 'failed' ? o.code : o.kind}`);
        return o;
      });
    // two fill the slots for 1.5 s; q1..q3 wait; q1 and q2 time out at 400 ms
    const all = [run('a', 1500), run('b', 1500), run('q1', 0), run('q2', 0)];
    assert.equal(t.pool.stats().queued, 2);
    assert.equal(t.pool.stats().workers.busy, 1);
    await Promise.all(all);
    assert.deepEqual(order, ['q1:E_ALLOCATE_TIMEOUT', 'q2:E_ALLOCATE_TIMEOUT', 'a:ack', 'b:ack']);
    // with room, queued jobs go in arrival order
    const order2: string[] = [];
    const t2 = [0, 1, 2, 3, 4].map((i) => t.pool.run(testJob({ ms: 50 }, `f${i}`), recorder()).then(() => order2.push(`f${i}`)));
    await Promise.all(t2);
    assert.deepEqual(order2, ['f0', 'f1', 'f2', 'f3', 'f4']);
  } finally {
    await t.close();
  }
});

test('jobs go to the least-loaded worker', TIMEOUT, async () => {
  const t = testPool('slow.mjs', { numWorkers: 3, maxConcurrency: 3 });
  try {
    await t.startReady();
    const runs = Array.from({ length: 6 }, (_, i) => t.pool.run(testJob({ ms: 300 }, `l${i}`), recorder()));
    // 6 jobs over 3 idle workers: 2 each, so none is full (busy); first-fit would fill two of them
    const s = t.pool.stats();
    assert.equal(s.inFlight, 6);
    assert.equal(s.queued, 0);
    assert.deepEqual(s.workers, { starting: 0, ready: 3, busy: 0, stopping: 0 });
    await Promise.all(runs);
  } finally {
    await t.close();
  }
});
