// The retry policy end to end (SPEC §5), on amqp091 against RabbitMQ 3.10 and 4.0 and on amqp1 against
// RabbitMQ 4.0: the attempt count reaches the worker, retries wait in the backoff delay queues, after
// max_attempts the job is dead-lettered (to dead_letter.pipeline with the reason, or into the queue's
// DLX), nack requeue:false dead-letters at once, nack requeue:true comes back after its delay,
// requeue_on_fail without a retry block requeues, and quorum queues (delivery-limit, DLX) on 4.0.
// Every test counts what went in and where each message ended up.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, waitFor, metricValue, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, readRecord, tally, type PipeSpec, type Target } from '../helpers/faults.js';

const { targets, skip } = await faultTargets();
const T = { timeout: 45_000 };

interface Ctx {
  admin: Admin;
  d: TestDaemon;
  q: string;
  record: string;
  attempts(id: string): number[];
}

/** queue arguments: amqp091 declares them itself (queue_headers); for amqp1 the test declares the queue */
async function mainQueue(t: Target, admin: Admin, queue: string, args: Record<string, unknown>): Promise<string> {
  admin.track(queue);
  if (t.driver === 'amqp1') {
    await admin.queue(queue, args);
    return '';
  }
  return Object.keys(args).length > 0 ? `queue_headers: ${JSON.stringify(args)}` : '';
}

async function scenario(t: Target, what: string, pipelines: (q: string, admin: Admin) => Promise<PipeSpec[]>, body: (c: Ctx) => Promise<void>): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix(what);
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-retry-'));
  const record = join(dir, 'record');
  let d: TestDaemon | undefined;
  try {
    const specs = await pipelines(q, admin);
    for (const s of specs) admin.track(s.queue);
    d = await startDaemon(daemonYaml({ target: t, pipelines: specs, env: { SCRIPTED_RECORD: record } }), { level: 'info' });
    const daemon = d;
    await waitFor('consuming', () => daemon.daemon.readiness().ok, 20_000);
    await body({
      admin,
      d,
      q,
      record,
      attempts: (id) =>
        readRecord(record)
          .filter((r) => r.id === id)
          .map((r) => r.attempt),
    });
  } finally {
    await d?.stop();
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

const jobsTotal = async (d: TestDaemon, pipeline: string, outcome: string): Promise<number> => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline, outcome });

for (const t of targets) {
  describe(`retry policy: ${t.label}`, { skip, concurrency: false }, () => {
    test('attempts 1..max reach the worker through the backoff delay queues; then dead-lettered to dead_letter.pipeline with the reason', T, async (tc) => {
      await scenario(
        t,
        'retry-dlp',
        async (q) => [
          // one job per worker: a crash fails every job its worker held, and these counts are exact per job
          { name: 'work', queue: q, retry: '{ max_attempts: 3, backoff: { initial: 300ms, max: 5s, multiplier: 2, jitter: 0 } }', deadLetter: 'dead', pool: '{ max_concurrency: 1 }' },
          { name: 'dead', queue: `${q}-dead`, consume: false },
        ],
        async ({ admin, d, q, attempts }) => {
          admin.track(`jobrunner.delay.${q}.300`, `jobrunner.delay.${q}.600`);
          const flaky = await admin.publish(q, [{ payload: { action: 'nack', error: 'flaky', ack_from_attempt: 3 } }, { payload: { action: 'nack', error: 'flaky', ack_from_attempt: 2 } }]);
          const poison = await admin.publish(q, [{ payload: { action: 'nack', error: 'always fails' } }, { payload: { action: 'crash' } }]);
          await waitFor('two dead letters', async () => (await admin.count(`${q}-dead`)) === 2, 30_000);
          await waitFor('the flaky jobs acked', async () => (await jobsTotal(d, 'work', 'ack')) === 2, 10_000);
          assert.deepEqual(attempts(flaky[0]!), [1, 2, 3]);
          assert.deepEqual(attempts(flaky[1]!), [1, 2]);
          for (const id of poison) assert.deepEqual(attempts(id), [1, 2, 3], 'a poison job runs max_attempts times, no more');
          // the retries waited in the per-delay TTL queues of the backoff (300 ms, then 600 ms)
          assert.equal(await admin.count(`jobrunner.delay.${q}.300`), 0);
          assert.equal(await admin.count(`jobrunner.delay.${q}.600`), 0);
          const dead = await admin.drain(`${q}-dead`);
          assert.deepEqual(dead.map((m) => m.id).sort(), [...poison].sort());
          for (const m of dead) {
            assert.equal(Number(m.headers['x-jobrunner-attempts']), 3);
            assert.equal(m.headers['x-jobrunner-dead-pipeline'], 'work');
            assert.match(String(m.headers['x-jobrunner-dead-reason']), /after 3 attempts/);
          }
          assert.match(String(dead.find((m) => m.id === poison[0])?.headers['x-jobrunner-dead-reason']), /always fails/);
          assert.match(String(dead.find((m) => m.id === poison[1])?.headers['x-jobrunner-dead-reason']), /E_WORKER_CRASH|exited/);
          assert.equal(await admin.count(q), 0);
          assert.equal(await jobsTotal(d, 'work', 'retry'), 2 + 1 + 2 + 2);
          assert.equal(await jobsTotal(d, 'work', 'dead_letter'), 2);
          const c = tally([...flaky, ...poison], flaky, dead.map((m) => m.id));
          tc.diagnostic(describeTally('retry to dead_letter.pipeline', c));
          assert.equal(c.lost, 0);
        },
      );
    });

    test('without dead_letter: after max_attempts into the queue DLX; nack requeue:false dead-letters at once', T, async (tc) => {
      await scenario(
        t,
        'retry-dlx',
        async (q, admin) => {
          await admin.queue(`${q}-dlq`);
          const headers = await mainQueue(t, admin, q, { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${q}-dlq` });
          return [{ name: 'work', queue: q, retry: '{ max_attempts: 2, backoff: { initial: 200ms, jitter: 0 } }', ...(headers ? { config: headers } : {}) }];
        },
        async ({ admin, d, q, attempts }) => {
          admin.track(`jobrunner.delay.${q}.200`);
          const [failing] = await admin.publish(q, [{ payload: { action: 'nack', error: 'boom' } }]);
          const [refused] = await admin.publish(q, [{ payload: { action: 'nack', error: 'not for me', requeue: false } }]);
          const [fine] = await admin.publish(q, [{ payload: { action: 'ack' } }]);
          await waitFor('two in the DLQ', async () => (await admin.count(`${q}-dlq`)) === 2, 30_000);
          assert.deepEqual(attempts(failing!), [1, 2]);
          assert.deepEqual(attempts(refused!), [1], 'requeue:false is not retried');
          assert.deepEqual(attempts(fine!), [1]);
          const dead = await admin.drain(`${q}-dlq`);
          assert.deepEqual(dead.map((m) => m.id).sort(), [failing!, refused!].sort());
          assert.equal(await admin.count(q), 0);
          assert.equal(await jobsTotal(d, 'work', 'dead_letter'), 2);
          const c = tally([failing!, refused!, fine!], [fine!], dead.map((m) => m.id));
          tc.diagnostic(describeTally('retry to the queue DLX', c));
          assert.equal(c.lost, 0);
          assert.equal(c.duplicates, 0);
        },
      );
    });

    test('nack requeue:true with delay comes back through the delay queue as the next attempt', T, async (tc) => {
      await scenario(
        t,
        'requeue-delay',
        async (q) => [{ name: 'work', queue: q, deadLetter: 'echo' }, { name: 'echo', queue: `${q}-echo`, consume: false }],
        async ({ admin, d, q, attempts }) => {
          admin.track(`jobrunner.delay.${q}.1000`);
          const [id] = await admin.publish(q, [{ payload: { action: 'nack', error: 'later', requeue: true, delay: 1, headers: { 'x-tried': ['yes'] }, ack_from_attempt: 2, n: 'one' } }]);
          await waitFor('acked on attempt 2', async () => (await jobsTotal(d, 'work', 'ack')) === 1, 20_000);
          assert.deepEqual(attempts(id!), [1, 2]);
          assert.equal(await jobsTotal(d, 'work', 'requeue'), 1);
          assert.equal(await admin.count(q), 0);
          assert.equal(await admin.count(`${q}-echo`), 0, 'nothing dead-lettered');
        },
      );
    });

    test('requeue_on_fail without a retry block: a failed job goes back to the queue (RoadRunner)', T, async (tc) => {
      await scenario(
        t,
        'requeue-on-fail',
        async (q) => [{ name: 'work', queue: q, config: 'requeue_on_fail: true' }],
        async ({ admin, d, q, attempts }) => {
          const [id] = await admin.publish(q, [{ payload: { action: 'nack', error: 'again' } }]);
          await waitFor('three deliveries', () => attempts(id!).length >= 3, 20_000);
          await d.daemon.pause('work');
          await waitFor('nothing held', () => d.daemon.health().pipelines['work'] !== undefined && d.daemon.readiness().pipelines['work']?.consuming === false, 5000);
          await waitFor('the job is back in the queue', async () => (await admin.count(q)) === 1, 10_000);
          assert.ok((await jobsTotal(d, 'work', 'requeue')) >= 3);
          assert.equal(await jobsTotal(d, 'work', 'dead_letter'), 0);
        },
      );
    });

    if (t.major >= 4) {
      test('quorum queue: retries with x-delivery-count, delivery-limit and the DLX', T, async (tc) => {
        await scenario(
          t,
          'quorum',
          async (q, admin) => {
            await admin.queue(`${q}-dlq`);
            const args = { 'x-queue-type': 'quorum', 'x-delivery-limit': 3, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${q}-dlq` };
            const retryHeaders = await mainQueue(t, admin, q, args);
            const plainHeaders = await mainQueue(t, admin, `${q}-rof`, args);
            return [
              { name: 'work', queue: q, retry: '{ max_attempts: 3, backoff: { initial: 200ms, jitter: 0 } }', ...(retryHeaders ? { config: retryHeaders } : {}) },
              { name: 'rof', queue: `${q}-rof`, config: ['requeue_on_fail: true', plainHeaders].filter(Boolean).join(', ') },
            ];
          },
          async ({ admin, d, q, attempts }) => {
            admin.track(`jobrunner.delay.${q}.200`, `jobrunner.delay.${q}.400`);
            // retry policy on a quorum queue: re-published with the attempt, then the broker's DLX
            const [retried] = await admin.publish(q, [{ payload: { action: 'nack', error: 'q' } }]);
            // requeue_on_fail: the broker's delivery count gives the attempt, so ack_from_attempt sees it rise
            const [counted] = await admin.publish(`${q}-rof`, [{ payload: { action: 'nack', error: 'q', ack_from_attempt: 3 } }]);
            // and one that always fails: the quorum delivery-limit dead-letters it, no endless loop
            const [limited] = await admin.publish(`${q}-rof`, [{ payload: { action: 'nack', error: 'forever' } }]);
            await waitFor('two in the DLQ', async () => (await admin.count(`${q}-dlq`)) === 2, 30_000);
            await waitFor('the counted job acked', async () => (await jobsTotal(d, 'rof', 'ack')) === 1, 10_000);
            assert.deepEqual(attempts(retried!), [1, 2, 3]);
            assert.deepEqual(attempts(counted!), [1, 2, 3], 'the attempt follows the quorum queue delivery count');
            assert.ok(attempts(limited!).length >= 3 && attempts(limited!).length <= 5, `delivery-limit bounds the requeues (${attempts(limited!).length})`);
            const dead = await admin.drain(`${q}-dlq`);
            assert.deepEqual(dead.map((m) => m.id).sort(), [retried!, limited!].sort());
            assert.equal(await admin.count(q), 0);
            assert.equal(await admin.count(`${q}-rof`), 0);
            const c = tally([retried!, counted!, limited!], [counted!], dead.map((m) => m.id));
            tc.diagnostic(describeTally('quorum queue', c));
            assert.equal(c.lost, 0);
          },
        );
      });
    }
  });
}
