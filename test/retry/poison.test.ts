// Poison messages and bad input (issue 4 §2, §4), on amqp091 (RabbitMQ 3.10, 4.0) and amqp1 (4.0): a body
// that cannot become a job is dead-lettered with the reason and never reaches a worker; bad worker frames
// fail the job through the retry policy and end dead-lettered, not in a loop; a worker that crashes at
// start backs off, shows unhealthy in /health and leaves every message queued; bodies that are empty, not
// UTF-8, 16 MiB or not JSON reach the worker with the right encoding and bytes. (A job whose worker crashes
// every time is in retry.test.ts: dead-lettered after max_attempts.) Every test counts in and out.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURE_WORKERS, httpJson, metricValue, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, readRecord, sleep, tally, type PipeSpec, type Target } from '../helpers/faults.js';

const { targets, skip } = await faultTargets();
const T = { timeout: 60_000 };
const REPORT = new URL('./workers/report.mjs', import.meta.url).pathname;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function withDaemon(t: Target, what: string, pipelines: (q: string) => PipeSpec[], body: (c: { admin: Admin; d: TestDaemon; q: string; record: string }) => Promise<void>, waitReady = true): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix(what);
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-poison-'));
  const record = join(dir, 'record');
  let d: TestDaemon | undefined;
  try {
    const specs = pipelines(q);
    for (const s of specs) admin.track(s.queue);
    for (let i = 0; i < 10; i++) admin.track(`jobrunner.delay.${q}.${100 * 2 ** i}`);
    d = await startDaemon(daemonYaml({ target: t, pipelines: specs, env: { SCRIPTED_RECORD: record }, pool: '{ num_workers: 1, destroy_timeout: 5s, allocate_timeout: 60s }' }), { level: 'info' });
    const daemon = d;
    if (waitReady) await waitFor('ready', () => daemon.daemon.readiness().ok, 20_000);
    await body({ admin, d, q, record });
  } finally {
    await d?.stop();
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

const retry = '{ max_attempts: 2, backoff: { initial: 100ms, jitter: 0 } }';

for (const t of targets) {
  describe(`poison and bad input: ${t.label}`, { skip, concurrency: false }, () => {
    test('a body that cannot become a job (bad rr_headers) is dead-lettered with the reason, never run', T, async (tc) => {
      await withDaemon(
        t,
        'bad-headers',
        (q) => [
          { name: 'work', queue: q, retry, deadLetter: 'dead' },
          { name: 'dead', queue: `${q}-dead`, consume: false },
        ],
        async ({ admin, d, q, record }) => {
          const bad = await admin.publish(q, [{ payload: { action: 'ack' }, headers: { rr_headers: Buffer.from('{not json') } }]);
          const good = await admin.publish(q, [{ payload: { action: 'ack' } }]);
          await waitFor('one dead letter', async () => (await admin.count(`${q}-dead`)) === 1);
          await waitFor('the good job ran', () => readRecord(record).length === 1);
          const dead = await admin.drain(`${q}-dead`);
          assert.deepEqual(dead.map((m) => m.id), bad);
          assert.match(String(dead[0]?.headers['x-jobrunner-dead-reason']), /E_BAD_MESSAGE/);
          assert.deepEqual(readRecord(record).map((r) => r.id), good, 'the bad message never reached a worker');
          assert.ok(d.logs.some((l) => l.level === 'warn' && l.code === 'E_BAD_MESSAGE'), 'a clear log line');
          const c = tally([...bad, ...good], good, dead.map((m) => m.id), (await admin.drain(q)).map((m) => m.id));
          tc.diagnostic(describeTally('bad rr_headers', c));
          assert.equal(c.lost, 0);
        },
      );
    });

    test('bad worker frames fail the job through the retry policy; the daemon carries on', T, async (tc) => {
      await withDaemon(
        t,
        'bad-frames',
        // one job per worker: an ack for an unknown id cannot say which job broke the protocol, so every
        // job on that worker fails with it; alone, each job's attempts are exact
        (q) => [
          { name: 'work', queue: q, retry, deadLetter: 'dead', pool: '{ max_concurrency: 1 }' },
          { name: 'dead', queue: `${q}-dead`, consume: false },
        ],
        async ({ admin, d, q, record }) => {
          const failing = await admin.publish(q, [{ payload: { action: 'bad-frame' } }, { payload: { action: 'wrong-id' } }]);
          const fine = await admin.publish(q, [{ payload: { action: 'garbage', then: 'ack' } }, { payload: { action: 'bad-frame', ack_from_attempt: 2 } }]);
          await waitFor('two dead letters', async () => (await admin.count(`${q}-dead`)) === 2, 30_000);
          await waitFor('two acks', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === 2);
          const dead = await admin.drain(`${q}-dead`);
          assert.deepEqual(dead.map((m) => m.id).sort(), [...failing].sort());
          for (const id of failing) assert.equal(readRecord(record).filter((r) => r.id === id).length, 2, 'max_attempts bounds a bad-frame job');
          assert.equal(await admin.count(q), 0);
          assert.ok(d.daemon.health().ok, 'still healthy: the bad worker was replaced');
          const c = tally([...failing, ...fine], fine, dead.map((m) => m.id));
          tc.diagnostic(describeTally('bad worker frames', c));
          assert.equal(c.lost, 0);
        },
      );
    });

    test('a worker that crashes at start: backs off, /health 503, every message stays with the broker', T, async (tc) => {
      await withDaemon(
        t,
        'crash-start',
        // a job handed to a worker as it dies counts as a failed attempt (the pool cannot tell a crash at start
        // from a job that crashed it), so max_attempts is high here: the point is backoff and nothing lost
        (q) => [{ name: 'work', queue: q, retry: '{ max_attempts: 50, backoff: { initial: 100ms, jitter: 0 } }', command: [process.execPath, join(FIXTURE_WORKERS, 'crash-on-start.mjs')] }],
        async ({ admin, d, q }) => {
          admin.track(q);
          await waitFor('consuming', () => d.daemon.readiness().pipelines['work']?.consuming === true, 20_000);
          const ids = await admin.publish(q, Array.from({ length: 5 }, () => ({ payload: { action: 'ack' } })));
          const h = await waitFor('/health 503', async () => {
            const r = await httpJson('GET', `${d.url}/health`);
            return r.status === 503 ? r : undefined;
          }, 20_000);
          assert.equal(h.body.pipelines.work.healthy, false);
          const restarts = d.logs.filter((l) => l.msg === 'worker exited').length;
          await sleep(1500);
          const later = d.logs.filter((l) => l.msg === 'worker exited').length;
          // backoff, not a hot loop: a handful of restarts, not hundreds
          assert.ok(later - restarts < 10, `restarts in 1.5 s: ${later - restarts}`);
          const text = await d.daemon.metricsText();
          for (const outcome of ['ack', 'dead_letter']) assert.equal(metricValue(text, 'jobrunner_jobs_total', { pipeline: 'work', outcome }), 0, outcome);
          const retries = metricValue(text, 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'retry' });
          assert.ok(retries <= later + 1, `at most one failed attempt per worker death (${retries} retries, ${later} exits)`);
          await d.stop();
          // a retried job waits in its delay queue (100 ms, 200 ms, ...) before it is back in the queue
          await waitFor('all five back in the queue', async () => (await admin.count(q)) === 5, 15_000);
          const queued = (await admin.drain(q)).map((m) => m.id);
          const c = tally(ids, [], [], queued);
          tc.diagnostic(describeTally('crash at start', c) + ` worker exits: ${later}, retries: ${retries}`);
          assert.equal(c.stillQueued, 5);
          assert.equal(c.lost, 0);
        },
        false,
      );
    });

    test('bodies empty, not UTF-8, not JSON, JSON and 16 MiB reach the worker with the right encoding', T, async (tc) => {
      await withDaemon(
        t,
        'bodies',
        (q) => [
          { name: 'work', queue: q, command: [process.execPath, REPORT] },
          { name: 'echo', queue: `${q}-echo`, consume: false },
        ],
        async ({ admin, d, q }) => {
          const big = randomBytes(16 * 1024 * 1024 - 64 * 1024);
          big[0] = 0xff; // never valid UTF-8
          const bodies: Array<[string, Buffer, string]> = [
            ['empty', Buffer.alloc(0), 'text'],
            ['latin1', Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'base64'],
            ['text', Buffer.from('plain text, not JSON ✓'), 'text'],
            ['json', Buffer.from('{"a":[1,2,{"b":null}]}'), 'json'],
            ['16MiB', big, 'base64'],
          ];
          const ids: string[] = [];
          for (const [, body] of bodies) ids.push(...(await admin.publish(q, [{ body }])));
          await waitFor('five reports', async () => (await admin.count(`${q}-echo`)) === 5, 40_000);
          const reports = (await admin.drain(`${q}-echo`)).map((m) => JSON.parse(m.body.toString('utf8')) as { n: string; encoding: string; length: number; sha256: string });
          bodies.forEach(([what, body, encoding], i) => {
            const r = reports.find((x) => x.n === ids[i]);
            assert.ok(r, `${what} reached the worker`);
            assert.equal(r.encoding, encoding, what);
            assert.equal(r.length, body.length, what);
            assert.equal(r.sha256, sha(body), what);
          });
          assert.equal(await admin.count(q), 0);
          assert.ok(d.daemon.health().ok);
          const c = tally(ids, reports.map((r) => r.n));
          tc.diagnostic(describeTally('bodies', c));
          assert.equal(c.lost, 0);
        },
      );
    });
  });
}
