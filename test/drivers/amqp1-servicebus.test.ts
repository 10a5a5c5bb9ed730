// The amqp1 driver's Service Bus behaviour, tested against a STAND-IN (test/helpers/servicebus-standin.ts):
// an AMQP 1.0 peer on 127.0.0.1 that plays Service Bus's part, in a child process of its own so that it
// does not share the rhea the driver patches. None of these tests talks to a real Service Bus; their
// names say so.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery, DriverConnection } from '../../src/drivers/driver.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { startServiceBusStandinProcess, type StandinProcess, type StandinState } from '../helpers/servicebus-standin-process.js';
import { amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { publish, waitFor, withTimeout, sleep } from './conformance.js';

const USER = 'RootManageSharedAccessKey';
const KEY = 'k/ey+with=special%chars';
const T = 20_000;

/** waits until the stand-in's state satisfies `pred` (asked over IPC, a bounded number of times) */
async function waitForState(sb: StandinProcess, pred: (st: StandinState) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred(await sb.state())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function withStandin(
  opts: { lockMs?: number },
  body: (sb: StandinProcess, conn: DriverConnection, queue: string) => Promise<void>,
): Promise<void> {
  const queue = `sb-${randomUUID().slice(0, 8)}`;
  const sb = await startServiceBusStandinProcess({ user: USER, key: KEY, queues: [queue], ...opts });
  const conn = createAmqp1Connection({
    config: { urls: [sb.url(USER, KEY)], containerId: 'jobrunner-sb-test', idleTimeoutMs: 10_000 },
    logger: silentLogger(),
    backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
  });
  try {
    await withTimeout(conn.start(), 5000, 'connect to the stand-in');
    await body(sb, conn, queue);
  } finally {
    await conn.stop();
    await sb.close();
  }
}

describe('amqp1 against a servicebus stand-in (not a real Service Bus)', { concurrency: false }, () => {
  test('servicebus stand-in (not a real Service Bus): SASL PLAIN with the URL-decoded SAS key name and key', { timeout: T }, async () => {
    await withStandin({}, async (sb) => {
      assert.deepEqual((await sb.state()).logins, [{ user: USER, password: KEY }]);
    });
  });

  test('servicebus stand-in (not a real Service Bus): a wrong key logs E_BROKER_CONNECT once, redacted, and keeps retrying', { timeout: T }, async () => {
    const sb = await startServiceBusStandinProcess({ user: USER, key: KEY, queues: [] });
    const lines: string[] = [];
    const dest = new PassThrough();
    dest.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
    const conn = createAmqp1Connection({
      config: { urls: [sb.url(USER, 'wrong-secret')], containerId: 'x', idleTimeoutMs: 10_000 },
      logger: createLogger({ level: 'debug', destination: dest }),
      backoff: { initialMs: 30, maxMs: 60, multiplier: 2, jitter: 0 },
    });
    const ac = new AbortController();
    try {
      const started = conn.start(ac.signal);
      await waitForState(sb, (st) => st.logins.length >= 3, 'three login attempts');
      ac.abort();
      await started;
      assert.equal(conn.status().connected, false);
      assert.match(conn.status().error ?? '', /cannot connect/);
      const errors = lines.map((l) => JSON.parse(l) as { level: string; code?: string; msg: string }).filter((l) => l.level === 'error');
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.code, 'E_BROKER_CONNECT');
      assert.ok(!lines.join('\n').includes('wrong-secret'), 'the key never reaches the log');
    } finally {
      await conn.stop();
      await sb.close();
    }
  });

  test('servicebus stand-in (not a real Service Bus): complete, abandon (counted), dead-letter with reason', { timeout: T }, async () => {
    await withStandin({}, async (sb, conn, queue) => {
      const pipe = conn.pipeline(amqp1Pipeline('sb', { queue, broker: 'servicebus', prefetch: 5 }));
      await pipe.declare();
      const ok = await publish(pipe, { body: Buffer.from('ok') });
      const again = await publish(pipe, { body: Buffer.from('again') });
      const dead = await publish(pipe, { body: Buffer.from('dead') });
      const seen: Delivery[] = [];
      await pipe.consume((d) => {
        seen.push(d);
        if (d.id === ok) void d.ack();
        else if (d.id === dead) void d.reject(false, 'worker said no');
        else if (d.attempt === 1) void d.reject(true);
        else void d.ack();
      });
      await waitFor('four deliveries', () => seen.length === 4).catch(async (err: unknown) => {
        const q = await sb.queue(queue);
        throw new Error(`${String(err)}; seen ${JSON.stringify(seen.map((d) => [d.body.toString(), d.attempt]))} ready ${q.ready} locked ${q.locked} completed ${q.completed} dead ${q.dead.length}`);
      });
      await waitForState(sb, (st) => st.queues[queue]?.completed === 2 && st.queues[queue]?.dead.length === 1, 'settlements at the stand-in');
      const second = seen.filter((d) => d.id === again);
      assert.deepEqual(second.map((d) => [d.attempt, d.redelivered]), [[1, false], [2, true]]);
      const q = await sb.queue(queue);
      assert.equal(q.dead[0]?.deadLetterReason, 'worker said no');
      assert.equal(q.ready, 0);
      await pipe.close();
    });
  });

  test('servicebus stand-in (not a real Service Bus): the lock is renewed while a job runs and on touch', { timeout: T }, async () => {
    await withStandin({ lockMs: 600 }, async (sb, conn, queue) => {
      const pipe = conn.pipeline(amqp1Pipeline('sb', { queue, broker: 'servicebus', prefetch: 1 }));
      await publish(pipe, {});
      const seen: Delivery[] = [];
      await pipe.consume((d) => seen.push(d));
      await waitFor('one delivery', () => seen.length === 1);
      const d = seen[0] as Delivery;
      assert.equal(typeof d.touch, 'function');
      const before = (await sb.state()).renewals;
      await d.touch?.();
      assert.equal((await sb.state()).renewals, before + 1, 'touch renews once');
      // held for several lock periods: the driver keeps renewing
      await sleep(2000);
      const held = await sb.state();
      assert.ok(held.renewals >= before + 3, `renewed ${held.renewals - before} times`);
      assert.equal(held.expiredLocks, 0);
      await d.ack();
      await waitForState(sb, (st) => st.queues[queue]?.completed === 1, 'completed');
      assert.equal(seen.length, 1, 'never redelivered');
      assert.equal((await sb.state()).lostLockSettlements, 0);
      await pipe.close();
    });
  });

  test('servicebus stand-in (not a real Service Bus): delays use x-opt-scheduled-enqueue-time', { timeout: T }, async () => {
    await withStandin({}, async (sb, conn, queue) => {
      const pipe = conn.pipeline(amqp1Pipeline('sb', { queue, broker: 'servicebus' }));
      const id = await publish(pipe, { delayMs: 800 });
      const q = await sb.queue(queue);
      assert.equal(q.scheduled.length, 1);
      assert.equal(q.ready, 0);
      const at = q.scheduled[0]?.scheduledEnqueueTime;
      assert.ok(at instanceof Date);
      const seen: Delivery[] = [];
      await pipe.consume((d) => {
        seen.push(d);
        void d.ack();
      });
      await waitFor('the scheduled message', () => seen.length === 1);
      assert.equal(seen[0]?.id, id);
      await pipe.close();
    });
  });

  test('servicebus stand-in (not a real Service Bus): publishing to a missing entity fails with E_PUBLISH', { timeout: T }, async () => {
    await withStandin({}, async (_sb, conn) => {
      const pipe = conn.pipeline(amqp1Pipeline('missing', { queue: 'no-such-queue', broker: 'servicebus' }));
      await assert.rejects(publish(pipe, {}), (err: unknown) => err instanceof JobrunnerError && err.code === 'E_PUBLISH');
      await assert.rejects(pipe.declare(), (err: unknown) => err instanceof JobrunnerError && err.code === 'E_BROKER_DECLARE');
      await pipe.close();
    });
  });
});
