// Hostile headers (hardening cases 1 and 2), on amqp091 (RabbitMQ 3.10, 4.0) and amqp1 (4.0): a delivery
// whose headers cannot be decoded, or whose retry or dead-letter copy cannot be published as it is, ends in
// the dead-letter pipeline with the reason after at most max_attempts deliveries; it never stops the
// pipeline for the messages behind it and never loops. Every test counts ids in and out (lost 0).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rhea from 'rhea';
import { metricValue, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, readRecord, sleep, tally, type Target } from '../helpers/faults.js';

const { targets, skip } = await faultTargets();
const T = { timeout: 90_000 };
const retry = '{ max_attempts: 2, backoff: { initial: 100ms, jitter: 0 } }';

async function withDaemon(t: Target, what: string, body: (c: { admin: Admin; d: TestDaemon; q: string; record: string }) => Promise<void>): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix(what);
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-hostile-'));
  const record = join(dir, 'record');
  let d: TestDaemon | undefined;
  try {
    admin.track(q, `${q}-dead`);
    for (let i = 0; i < 10; i++) admin.track(`jobrunner.delay.${q}.${100 * 2 ** i}`);
    const yaml = daemonYaml({
      target: t,
      pipelines: [
        { name: 'work', queue: q, retry, deadLetter: 'dead' },
        { name: 'dead', queue: `${q}-dead`, consume: false },
      ],
      env: { SCRIPTED_RECORD: record },
      pool: '{ num_workers: 1, destroy_timeout: 5s, allocate_timeout: 60s }',
    });
    d = await startDaemon(yaml, { level: 'info' });
    const daemon = d;
    await waitFor('ready', () => daemon.daemon.readiness().ok, 20_000);
    try {
      await body({ admin, d, q, record });
    } catch (err) {
      // what the daemon said, for the failure report
      for (const l of d.logs.filter((x) => x.level !== 'info' && x.level !== 'debug').slice(0, 20)) console.error(JSON.stringify(l).slice(0, 400));
      throw err;
    }
  } finally {
    await d?.stop();
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `levels` arrays nested in one another */
function nested(levels: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

function nestedAmqp1(levels: number): unknown {
  let v: unknown = rhea.types.wrap_list([]);
  for (let i = 0; i < levels; i++) v = rhea.types.wrap_list([v]);
  return v;
}

/** Sends one message with these message annotations over AMQP 1.0 (RabbitMQ 4's /queues/NAME address); its id. */
async function sendAmqp1(url: string, queue: string, annotations: Record<string, unknown>): Promise<string> {
  const u = new URL(url);
  const id = randomUUID();
  const c = rhea.create_container({ id: `hostile-${id}` });
  const conn = c.connect({ host: u.hostname, port: Number(u.port), username: decodeURIComponent(u.username), password: decodeURIComponent(u.password), hostname: 'vhost:/', reconnect: false });
  try {
    await new Promise<void>((resolve, reject) => {
      const sender = conn.open_sender({ target: { address: `/queues/${queue}` } });
      sender.once('sendable', () => {
        sender.send({ message_id: id, body: rhea.message.data_section(Buffer.from(JSON.stringify({ action: 'ack' }))), application_properties: { rr_id: id, rr_job: 'Test' }, message_annotations: annotations, durable: true });
      });
      sender.once('accepted', () => resolve());
      for (const e of ['rejected', 'released', 'sender_error', 'connection_error'] as const) sender.once(e, () => reject(new Error(`AMQP 1.0 send: ${e}`)));
      conn.once('disconnected', (ctx) => reject(new Error(`AMQP 1.0 send: disconnected ${String(ctx.error ?? '')}`)));
    });
  } finally {
    conn.close();
  }
  return id;
}

for (const t of targets) {
  describe(`hostile headers: ${t.label}`, { skip, concurrency: false }, () => {
    test('case 1: deeply nested headers are dead-lettered with E_BAD_MESSAGE; the messages behind them run', T, async (tc) => {
      await withDaemon(t, 'nested', async ({ admin, d, q, record }) => {
        const deepJson = Buffer.from(`{"a":${'['.repeat(2000)}${']'.repeat(2000)}}`);
        const bad = [
          ...(await admin.publish(q, [{ payload: { action: 'ack' }, headers: { rr_headers: deepJson } }])),
          // over AMQP 0-9-1 a header table; over AMQP 1.0 (RabbitMQ drops a 0-9-1 array header on the way) a
          // message annotation, sent by an AMQP 1.0 client
          ...(t.driver === 'amqp091' ? await admin.publish(q, [{ payload: { action: 'ack' }, headers: { deep: nested(2500) } }]) : [await sendAmqp1(t.url, q, { 'x-deep': nestedAmqp1(2500) })]),
        ];
        const good = await admin.publish(q, Array.from({ length: 5 }, () => ({ payload: { action: 'ack' } })));
        await waitFor('the good jobs ran', () => readRecord(record).length >= good.length, 30_000);
        await waitFor('two dead letters', async () => (await admin.count(`${q}-dead`)) === 2, 30_000);
        await sleep(300);
        const dead = await admin.drain(`${q}-dead`);
        assert.deepEqual(dead.map((m) => m.id).sort(), [...bad].sort());
        for (const m of dead) assert.match(String(m.headers['x-jobrunner-dead-reason']), /E_BAD_MESSAGE/);
        assert.deepEqual(readRecord(record).map((r) => r.id).sort(), [...good].sort(), 'the bad messages never reached a worker, the good ones once each');
        const channelErrors = d.logs.filter((l) => /channel error|stack|call stack/i.test(String(l.msg))).length;
        assert.equal(channelErrors, 0, 'no channel error, no stack overflow');
        const text = await d.daemon.metricsText();
        assert.equal(metricValue(text, 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'dead_letter' }), 2, 'each bad message dead-lettered once');
        assert.ok(d.daemon.health().ok);
        const c = tally([...bad, ...good], readRecord(record).map((r) => r.id), dead.map((m) => m.id), (await admin.drain(q)).map((m) => m.id));
        tc.diagnostic(describeTally('nested headers', c));
        assert.equal(c.lost, 0);
        assert.equal(c.duplicates, 0);
      });
    });

    test('case 2: failing jobs whose copies the broker cannot carry end dead-lettered after max_attempts, never looping', T, async (tc) => {
      await withDaemon(t, 'unpublishable', async ({ admin, d, q, record }) => {
        const nack = { action: 'nack' };
        const longId = `long-${'x'.repeat(295)}`;
        const cases: Array<[string, Parameters<Admin['publish']>[1][number]]> = [
          ['rr_priority 1.5', { payload: nack, headers: { rr_priority: 1.5 } }],
          ['rr_priority 1e30', { payload: nack, headers: { rr_priority: 1e30 } }],
          ['attempt 2^31+5', { payload: nack, headers: { 'x-jobrunner-attempt': 2 ** 31 + 5 } }],
          ['rr_id of 300 characters', { payload: nack, headers: { rr_id: longId } }],
          ['30 KB of control characters', { payload: nack, headers: { junk: '\u0001'.repeat(30_000) } }],
          ['a nack carrying a 200 KB header', { payload: { action: 'nack', requeue: true, headers: { big: ['y'.repeat(200_000)] } } }],
        ];
        const published: string[] = [];
        for (const [, c] of cases) {
          const [id] = await admin.publish(q, [c]);
          published.push(c.headers?.['rr_id'] === longId ? longId : id!);
        }
        const good = await admin.publish(q, Array.from({ length: 3 }, () => ({ payload: { action: 'ack' } })));
        await waitFor('every hostile job dead-lettered', async () => (await admin.count(`${q}-dead`)) === cases.length, 60_000);
        await waitFor('the good jobs acked', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === good.length, 30_000);
        await sleep(500);
        const dead = await admin.drain(`${q}-dead`);
        const deadIds = dead.map((m) => String(m.headers['rr_id'] ?? m.id));
        for (const [i, [what]] of cases.entries()) {
          const id = published[i]!;
          assert.ok(deadIds.includes(id), `${what}: dead-lettered`);
          const deliveries = readRecord(record).filter((r) => r.id === id).length;
          assert.ok(deliveries <= 2, `${what}: delivered ${deliveries} times, at most max_attempts (2)`);
        }
        const remaining = (await admin.drain(q)).map((m) => m.id);
        const c = tally([...published, ...good], good, deadIds, remaining);
        tc.diagnostic(describeTally('unpublishable copies', c) + ` deliveries=${readRecord(record).length}`);
        assert.equal(c.lost, 0);
        assert.equal(c.duplicates, 0);
        assert.equal(remaining.length, 0, 'nothing left looping in the queue');
        assert.ok(readRecord(record).length <= cases.length * 2 + good.length, 'no message delivered more than max_attempts times');
        assert.ok(d.daemon.health().ok);
      });
    });
  });
}
