// The daemon end to end on amqp091 against real RabbitMQ 3.10 and 4.0, with real worker processes
// (test/fixtures/workers/scripted.mjs): every test counts messages in and out.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { brokerUrls } from '../drivers/conformance.js';
import { FIXTURE_WORKERS, metricValue, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const urls = brokerUrls('AMQP091_URLS');
const SCRIPTED = join(FIXTURE_WORKERS, 'scripted.mjs');

function recorded(file: string): Array<{ id: string; attempt: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [id, attempt] = l.split(' ');
      return { id: id as string, attempt: Number(attempt) };
    });
}

for (const url of urls ?? []) {
  describe(`daemon on amqp091 ${url}`, () => {
    let conn: amqp.ChannelModel;
    let ch: amqp.ConfirmChannel;
    const queues: string[] = [];
    const exchanges: string[] = [];
    const daemons: TestDaemon[] = [];

    before(async () => {
      conn = await amqp.connect(url);
      ch = await conn.createConfirmChannel();
    });
    after(async () => {
      await Promise.all(daemons.map((d) => d.stop()));
      for (const q of queues) {
        await ch.deleteQueue(q).catch(() => undefined);
        rmSync(join('/tmp', `jobrunner-record-${q}`), { force: true });
      }
      for (const e of exchanges) await ch.deleteExchange(e).catch(() => undefined);
      await conn.close().catch(() => undefined);
    });

    /** a daemon consuming pipeline `work` (queue q) with the scripted worker, recording every delivery */
    async function daemonFor(q: string, extra: { pipelineYaml?: string; more?: string; workers?: number; concurrency?: number } = {}): Promise<{ d: TestDaemon; record: string }> {
      queues.push(q);
      const record = join('/tmp', `jobrunner-record-${q}`);
      const yaml = `
version: "3"
server:
  command: ["${process.execPath}", "${SCRIPTED}"]
  env: { SCRIPTED_RECORD: "${record}" }
amqp:
  addr: "${url}"
http: { address: "127.0.0.1:0" }
logs: { level: debug }
jobs:
  consume: ["work"]
  pool: { num_workers: ${extra.workers ?? 2}, max_concurrency: ${extra.concurrency ?? 4} }
  pipelines:
    work:
      driver: amqp091
${extra.pipelineYaml ?? ''}
      config:
        queue: ${q}
        exchange: ""
        routing_key: ${q}
        prefetch: 20
${extra.more ?? ''}`;
      const d = await startDaemon(yaml);
      daemons.push(d);
      await waitFor('consuming', () => d.daemon.readiness().ok);
      return { d, record };
    }

    async function send(q: string, payload: unknown, headers: Record<string, unknown> = {}): Promise<string> {
      const id = randomUUID();
      ch.sendToQueue(q, Buffer.from(JSON.stringify(payload)), { messageId: id, persistent: true, contentType: 'application/json', headers });
      await ch.waitForConfirms();
      return id;
    }

    async function depth(q: string): Promise<number> {
      return (await ch.checkQueue(q)).messageCount;
    }

    test('N published = N acked, each exactly once, and the queue is empty', async () => {
      const q = `jr-d-n-${randomUUID().slice(0, 8)}`;
      await ch.assertQueue(q, { durable: false });
      const { d, record } = await daemonFor(q);
      const N = 200;
      const ids = new Set<string>();
      for (let i = 0; i < N; i++) ids.add(await send(q, { action: 'ack', i }));
      await waitFor('all acked', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === N);
      const seen = recorded(record);
      assert.equal(seen.length, N, 'each delivered once');
      assert.deepEqual(new Set(seen.map((s) => s.id)), ids);
      assert.equal(await depth(q), 0);
    });

    test('nack with requeue comes back (attempt 2) and is then acked', async () => {
      const q = `jr-d-rq-${randomUUID().slice(0, 8)}`;
      await ch.assertQueue(q, { durable: false });
      const { d, record } = await daemonFor(q);
      const id = await send(q, { action: 'nack', requeue: true, ack_from_attempt: 2 });
      await waitFor('acked after requeue', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === 1);
      assert.deepEqual(recorded(record), [
        { id, attempt: 1 },
        { id, attempt: 2 },
      ]);
      assert.equal(metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'requeue' }), 1);
      assert.equal(await depth(q), 0);
    });

    test("nack without requeue lands in the queue's dead-letter exchange", async () => {
      const q = `jr-d-dlx-${randomUUID().slice(0, 8)}`;
      const dlq = `${q}-dead`;
      queues.push(dlq);
      await ch.assertQueue(dlq, { durable: false });
      await ch.assertQueue(q, { durable: false, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dlq } });
      const { d } = await daemonFor(q, { more: `        queue_headers: { x-dead-letter-exchange: "", x-dead-letter-routing-key: ${dlq} }\n` });
      const ids = [await send(q, { action: 'nack', requeue: false, error: 'bad' }), await send(q, { action: 'nack', error: 'no retry block: requeue_on_fail false' })];
      await waitFor('both dead-lettered', async () => (await depth(dlq)) === 2);
      const got: string[] = [];
      for (let i = 0; i < 2; i++) {
        const m = await ch.get(dlq, { noAck: true });
        assert.ok(m);
        got.push(m.properties.messageId as string);
      }
      assert.deepEqual(got.sort(), ids.sort());
      assert.equal(await depth(q), 0);
      assert.equal(metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'dead_letter' }), 2);
    });

    test('a delayed requeue arrives after its delay and not before', async () => {
      const q = `jr-d-delay-${randomUUID().slice(0, 8)}`;
      await ch.assertQueue(q, { durable: false });
      const { record } = await daemonFor(q);
      const id = await send(q, { action: 'nack', requeue: true, delay: 2, ack_from_attempt: 2 });
      await waitFor('first attempt', () => recorded(record).length === 1);
      const firstAt = Date.now();
      // still parked in the TTL queue a moment later
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(recorded(record).length, 1, 'not redelivered before the delay');
      await waitFor('second attempt', () => recorded(record).length === 2, 15_000);
      assert.ok(Date.now() - firstAt >= 1900, 'redelivered after the delay');
      assert.deepEqual(recorded(record).map((r) => r.id), [id, id]);
      await waitFor('queue empty', async () => (await depth(q)) === 0);
    });

    test('a follow-up is confirmed before its parent is acked; an unroutable one fails the parent', async () => {
      const q = `jr-d-fu-${randomUUID().slice(0, 8)}`;
      const fq = `${q}-follow`;
      const ex = `${q}-nowhere`;
      exchanges.push(ex);
      await ch.assertQueue(q, { durable: false });
      await ch.assertQueue(fq, { durable: false });
      queues.push(fq);
      await ch.assertExchange(ex, 'direct', { durable: false }); // no binding: publishes to it are unroutable
      const { d } = await daemonFor(q, {
        pipelineYaml: '      retry: { max_attempts: 2, backoff: { initial: 100ms, max: 200ms } }\n',
        more: `    follow:
      driver: amqp091
      config: { queue: ${fq}, exchange: "", routing_key: ${fq} }
    nowhere:
      driver: amqp091
      config: { queue: ${q}-unused, exchange: ${ex}, routing_key: none, declare: false, queue_declare: false }
`,
      });
      queues.push(`${q}-unused`);
      const okId = await send(q, { action: 'publish', publish: [{ pipeline: 'follow', job: 'Child', payload: { n: 1 } }, { pipeline: 'follow', job: 'Child', payload: { n: 2 } }] });
      await waitFor('parent acked', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === 1);
      // the ack came after both confirms: both children are in their queue already
      assert.equal(await depth(fq), 2);
      assert.ok(okId);
      await send(q, { action: 'publish', publish: [{ pipeline: 'nowhere', job: 'Lost', payload: {} }] });
      await waitFor('parent retried then dead-lettered', async () => {
        const text = await d.daemon.metricsText();
        return metricValue(text, 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'retry' }) === 1 && metricValue(text, 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'dead_letter' }) === 1;
      });
      assert.equal(metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }), 1, 'the parent with a failed follow-up was never acked');
    });

    test('a consumed pipeline whose queue is missing (declare: false) is unhealthy and says why', async () => {
      const q = `jr-d-missing-${randomUUID().slice(0, 8)}`;
      const d = await startDaemon(`
version: "3"
server: { command: ["${process.execPath}", "${SCRIPTED}"] }
amqp: { addr: "${url}" }
http: { address: "127.0.0.1:0" }
jobs:
  consume: ["work"]
  pipelines:
    work:
      driver: amqp091
      config: { queue: ${q}, exchange: "", routing_key: ${q}, declare: false }
`);
      daemons.push(d);
      const health = await waitFor('503', async () => {
        const h = d.daemon.health();
        return h.ok ? undefined : h;
      });
      assert.equal(health.pipelines['work']?.healthy, false);
      assert.match(String(health.pipelines['work']?.error), new RegExp(q));
      assert.equal(d.daemon.readiness().ok, false);
    });

    test('stop with jobs in flight returns them to the queue unacked', async () => {
      const q = `jr-d-stop-${randomUUID().slice(0, 8)}`;
      await ch.assertQueue(q, { durable: false });
      const { d, record } = await daemonFor(q, { pipelineYaml: '      pool: { destroy_timeout: 300ms }\n', workers: 1, concurrency: 3 });
      for (let i = 0; i < 3; i++) await send(q, { action: 'hang' });
      await waitFor('held', () => recorded(record).length === 3);
      await d.stop();
      assert.equal(await depth(q), 3, 'all three back in the queue');
    });
  });
}

test('amqp091 daemon tests need AMQP091_URLS', (t) => {
  if (urls && urls.length > 0) return;
  if (process.env['CI'] === 'true') assert.fail('AMQP091_URLS is not set under CI=true: run eval "$(sudo scripts/test-servers.sh)"');
  t.skip('AMQP091_URLS not set: run eval "$(sudo scripts/test-servers.sh)" to run the broker tests');
});
