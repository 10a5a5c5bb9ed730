// The amqp1 driver's Service Bus behaviour, tested against a STAND-IN (test/helpers/servicebus-standin.ts):
// an AMQP 1.0 peer on 127.0.0.1 that plays Service Bus's part. None of these tests talks to a real
// Service Bus; their names say so.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery, DriverConnection } from '../../src/drivers/driver.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { startServiceBusStandin, type ServiceBusStandin } from '../helpers/servicebus-standin.js';
import { amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { publish, waitFor, withTimeout, sleep } from './conformance.js';

const USER = 'RootManageSharedAccessKey';
const KEY = 'k/ey+with=special%chars';
const T = 20_000;

async function withStandin(
  opts: { lockMs?: number },
  body: (sb: ServiceBusStandin, conn: DriverConnection, queue: string) => Promise<void>,
): Promise<void> {
  const queue = `sb-${randomUUID().slice(0, 8)}`;
  const sb = await startServiceBusStandin({ user: USER, key: KEY, queues: [queue], ...opts });
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
      assert.deepEqual(sb.logins, [{ user: USER, password: KEY }]);
    });
  });

  test('servicebus stand-in (not a real Service Bus): a wrong key logs E_BROKER_CONNECT once, redacted, and keeps retrying', { timeout: T }, async () => {
    const sb = await startServiceBusStandin({ user: USER, key: KEY, queues: [] });
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
      await waitFor(() => sb.logins.length >= 3, 'three login attempts');
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
      await waitFor(() => seen.length === 4, 'four deliveries').catch((err: unknown) => {
        const q = sb.queue(queue);
        throw new Error(`${String(err)}; seen ${JSON.stringify(seen.map((d) => [d.body.toString(), d.attempt]))} ready ${q.ready.length} locked ${q.locked.size} completed ${q.completed.length} dead ${q.dead.length}`);
      });
      await waitFor(() => sb.queue(queue).completed.length === 2 && sb.queue(queue).dead.length === 1, 'settlements at the stand-in');
      const second = seen.filter((d) => d.id === again);
      assert.deepEqual(second.map((d) => [d.attempt, d.redelivered]), [[1, false], [2, true]]);
      assert.equal(sb.queue(queue).dead[0]?.deadLetterReason, 'worker said no');
      assert.equal(sb.queue(queue).ready.length, 0);
      await pipe.close();
    });
  });

  test('servicebus stand-in (not a real Service Bus): the lock is renewed while a job runs and on touch', { timeout: T }, async () => {
    await withStandin({ lockMs: 600 }, async (sb, conn, queue) => {
      const pipe = conn.pipeline(amqp1Pipeline('sb', { queue, broker: 'servicebus', prefetch: 1 }));
      await publish(pipe, {});
      const seen: Delivery[] = [];
      await pipe.consume((d) => seen.push(d));
      await waitFor(() => seen.length === 1, 'one delivery');
      const d = seen[0] as Delivery;
      assert.equal(typeof d.touch, 'function');
      const before = sb.renewals;
      await d.touch?.();
      assert.equal(sb.renewals, before + 1, 'touch renews once');
      // held for several lock periods: the driver keeps renewing
      await sleep(2000);
      assert.ok(sb.renewals >= before + 3, `renewed ${sb.renewals - before} times`);
      assert.equal(sb.expiredLocks, 0);
      await d.ack();
      await waitFor(() => sb.queue(queue).completed.length === 1, 'completed');
      assert.equal(seen.length, 1, 'never redelivered');
      assert.equal(sb.lostLockSettlements, 0);
      await pipe.close();
    });
  });

  test('servicebus stand-in (not a real Service Bus): delays use x-opt-scheduled-enqueue-time', { timeout: T }, async () => {
    await withStandin({}, async (sb, conn, queue) => {
      const pipe = conn.pipeline(amqp1Pipeline('sb', { queue, broker: 'servicebus' }));
      const id = await publish(pipe, { delayMs: 800 });
      assert.equal(sb.queue(queue).scheduled.length, 1);
      assert.equal(sb.queue(queue).ready.length, 0);
      const at = sb.queue(queue).scheduled[0]?.msg.message.message_annotations?.['x-opt-scheduled-enqueue-time'];
      assert.ok(at instanceof Date);
      const seen: Delivery[] = [];
      await pipe.consume((d) => {
        seen.push(d);
        void d.ack();
      });
      await waitFor(() => seen.length === 1, 'the scheduled message');
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
