// amqp091-only behaviour, against every broker in AMQP091_URLS: exchange types, declare:false,
// quorum queues' delivery count, RoadRunner header wire types, third-party messages, prefetch,
// multiple_ack, connect errors and URL lists.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { Amqp091PipelineOptions } from '../../src/drivers/amqp091/options.js';
import { createAmqp091Connection } from '../../src/drivers/amqp091/connection.js';
import type { BrokerPipeline, Delivery, DriverConnection } from '../../src/drivers/driver.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { contentHeaderTables } from './amqp-frames.js';
import { amqpPipeline, RawBroker, TEST_DELAYS_MS, type Amqp091Pipeline } from './amqp091-helpers.js';
import { brokerUrls, collect, publish, sleep, waitFor, withTimeout } from './conformance.js';

const urls = brokerUrls('AMQP091_URLS');
const T = 30_000;

interface Ctx {
  conn: DriverConnection;
  raw: RawBroker;
  /** a unique name; queues and exchanges made from it are deleted after the test */
  name(suffix: string): string;
  open(cfg: Amqp091Pipeline): Promise<BrokerPipeline>;
}

async function withCtx(url: string, body: (c: Ctx) => Promise<void>): Promise<void> {
  const run = randomUUID().slice(0, 8);
  const names = new Set<string>();
  const pipes: BrokerPipeline[] = [];
  const conn = createAmqp091Connection({ config: { urls: [url] }, logger: silentLogger() });
  const raw = await RawBroker.open(url);
  try {
    await withTimeout(conn.start(), 10_000, 'connect');
    await body({
      conn,
      raw,
      name(suffix) {
        const n = `amqp091-${suffix}-${run}`;
        names.add(n);
        return n;
      },
      async open(cfg) {
        const p = conn.pipeline(cfg);
        pipes.push(p);
        await p.declare();
        return p;
      },
    });
  } finally {
    for (const p of pipes.reverse()) await p.close().catch(() => undefined);
    await conn.stop();
    await raw.deleteQueues([...names].flatMap((q) => [q, ...TEST_DELAYS_MS.map((ms) => `jobrunner.delay.${q}.${ms}`)]));
    await raw.deleteExchanges(names);
    await raw.close();
  }
}

function opts(o: Partial<Amqp091PipelineOptions>): Partial<Amqp091PipelineOptions> {
  return o;
}

if (urls === undefined) {
  test('amqp091 driver', { skip: 'AMQP091_URLS is not set (run: eval "$(sudo scripts/test-servers.sh)")' }, () => undefined);
} else {
  for (const url of urls) {
    const host = new URL(url).host;
    describe(`amqp091 driver on ${host}`, { concurrency: false }, () => {
      test('fanout exchange: a push reaches every bound queue; a delayed one only its own queue', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const x = c.name('fanout-x');
          const a = await c.open(amqpPipeline(c.name('fan-a'), opts({ exchange: x, exchangeType: 'fanout' })));
          const b = await c.open(amqpPipeline(c.name('fan-b'), opts({ exchange: x, exchangeType: 'fanout' })));
          await publish(a, { body: Buffer.from('both') });
          await publish(a, { body: Buffer.from('only-a'), delayMs: 500 });
          const gotA = await collect(a, 2);
          assert.deepEqual(gotA.map((d) => d.body.toString()), ['both', 'only-a']);
          await Promise.all(gotA.map((d) => d.ack()));
          const gotB = await collect(b, 1);
          assert.deepEqual(gotB.map((d) => d.body.toString()), ['both']);
          await gotB[0]?.ack();
          assert.equal(await b.readyCount(), 0);
        });
      });

      test('topic exchange: the binding pattern decides', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const x = c.name('topic-x');
          const p = await c.open(amqpPipeline(c.name('topic'), opts({ exchange: x, exchangeType: 'topic', routingKey: 'orders.*' })));
          await c.raw.withChannel(async (ch) => {
            ch.publish(x, 'orders.eu', Buffer.from('match'));
            ch.publish(x, 'invoices.eu', Buffer.from('no-match'));
          });
          const got = await collect(p, 1);
          assert.equal(got[0]?.body.toString(), 'match');
          await got[0]?.ack();
          assert.equal(await p.readyCount(), 0);
        });
      });

      test('headers exchange: binds with queue_headers x-match; pushes carry the match headers', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const x = c.name('headers-x');
          const p = await c.open(amqpPipeline(c.name('hdr'), opts({ exchange: x, exchangeType: 'headers', queueHeaders: { 'x-match': 'all', tenant: 'acme' } })));
          await c.raw.withChannel(async (ch) => {
            ch.publish(x, '', Buffer.from('raw-other'), { headers: { tenant: 'other' } });
          });
          await publish(p, { body: Buffer.from('pushed') });
          await publish(p, { body: Buffer.from('delayed'), delayMs: 500 });
          const got = await collect(p, 2);
          assert.deepEqual(got.map((d) => d.body.toString()), ['pushed', 'delayed']);
          await Promise.all(got.map((d) => d.ack()));
          assert.equal(await p.readyCount(), 0);
        });
      });

      test('declare:false consumes an existing queue and declares nothing', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const q = c.name('existing');
          await c.raw.ch.assertQueue(q, { durable: false, arguments: { 'x-max-length': 1000 } });
          const p = await c.open(amqpPipeline(q, opts({ exchange: '', queueDeclare: false })));
          await publish(p, { body: Buffer.from('x') });
          const [d] = await collect(p, 1);
          assert.equal(d?.body.toString(), 'x');
          await d?.ack();
        });
      });

      test('declare:false on a missing queue is a clear E_BROKER_DECLARE naming it', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const q = c.name('missing');
          const p = c.conn.pipeline(amqpPipeline(q, opts({ exchange: '', queueDeclare: false })));
          await assert.rejects(p.declare(), (err: unknown) => {
            assert.ok(err instanceof JobrunnerError);
            assert.equal(err.code, 'E_BROKER_DECLARE');
            assert.match(err.message, new RegExp(`^pipeline ${q}: queue "${q}" does not exist \\(declare: false needs an existing queue\\): `));
            return true;
          });
          // the connection and its publish channel are unharmed
          assert.equal(c.conn.status().connected, true);
          assert.equal(await p.readyCount(), undefined);
          const ok = await c.open(amqpPipeline(c.name('after-missing'), opts({ exchange: '' })));
          await publish(ok, {});
          assert.equal(await ok.readyCount(), 1);
        });
      });

      test('quorum queue (queue_headers x-queue-type): the delivery count raises the attempt', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const p = await c.open(amqpPipeline(c.name('quorum'), opts({ exchange: '', durable: true, queueHeaders: { 'x-queue-type': 'quorum' } })));
          await publish(p, {});
          const seen: Delivery[] = [];
          await p.consume((d) => {
            seen.push(d);
            if (seen.length < 3) void d.reject(true);
            else void d.ack();
          });
          await waitFor('three deliveries', () => seen.length === 3);
          await p.cancel();
          assert.deepEqual(seen.map((d) => d.attempt), [1, 2, 3]);
          assert.deepEqual(seen.map((d) => d.headers['x-delivery-count']), [undefined, ['1'], ['2']]);
        });
      });

      test('RoadRunner headers go out with the AMQP types RoadRunner reads', { timeout: T }, async () => {
        const u = new URL(url);
        const proxy = await startTcpProxy(u.hostname, Number(u.port || 5672));
        const down: Buffer[] = [];
        proxy.tap((dir, chunk) => {
          if (dir === 'down') down.push(Buffer.from(chunk));
        });
        const tapped = await RawBroker.open(proxy.url(url));
        try {
          await withCtx(url, async (c) => {
            const p = await c.open(amqpPipeline(c.name('types'), opts({ exchange: '', priority: 7 })));
            const id = await publish(p, {
              job: 'App\\Jobs\\Mail',
              headers: { tenant: ['acme'] },
              delayMs: 0,
              attempt: 2,
              extra: { 'x-jobrunner-dead-reason': 'why' },
            });
            const msg = await tapped.withChannel((ch) => ch.get(p.queue, { noAck: true }));
            assert.ok(msg, 'the message is in the queue');
            assert.equal(msg.properties.messageId, id);
            assert.equal(msg.properties.deliveryMode, 2);
            assert.equal(msg.properties.contentType, 'application/json');
            assert.equal(msg.properties.priority, 7);
            assert.equal(typeof msg.properties.timestamp, 'number');
            await waitFor('the content header frame', () => contentHeaderTables(Buffer.concat(down)).length > 0);
            const [h] = contentHeaderTables(Buffer.concat(down));
            assert.ok(h);
            assert.deepEqual(h['rr_id'], { tag: 'S', value: id });
            assert.deepEqual(h['rr_job'], { tag: 'S', value: 'App\\Jobs\\Mail' });
            assert.deepEqual(h['rr_pipeline'], { tag: 'S', value: p.name });
            assert.equal(h['rr_headers']?.tag, 'x');
            assert.equal(String(h['rr_headers']?.value), '{"tenant":["acme"]}');
            assert.deepEqual(h['rr_delay'], { tag: 'I', value: 0 });
            assert.deepEqual(h['rr_priority'], { tag: 'l', value: 7 });
            assert.deepEqual(h['rr_auto_ack'], { tag: 't', value: false });
            assert.deepEqual(h['x-jobrunner-attempt'], { tag: 'I', value: 2 });
            assert.deepEqual(h['x-jobrunner-dead-reason'], { tag: 'S', value: 'why' });
          });
        } finally {
          await tapped.close();
          await proxy.close();
        }
      });

      test('a RoadRunner-published message becomes the same job', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const p = await c.open(amqpPipeline(c.name('from-rr'), opts({ exchange: '' })));
          // what RoadRunner's Go driver (amqp091-go) puts on the wire
          c.raw.ch.sendToQueue(p.queue, Buffer.from('{"a":1}'), {
            headers: {
              rr_id: 'rr-1',
              rr_job: 'RRJob',
              rr_pipeline: 'elsewhere',
              rr_headers: Buffer.from('{"tenant":["acme"],"x":["1","2"]}'),
              rr_delay: { '!': 'int32', value: 0 },
              rr_priority: { '!': 'int64', value: 10 },
              rr_auto_ack: false,
              custom: 5,
            },
          });
          const [d] = await collect(p, 1);
          assert.ok(d);
          assert.equal(d.id, 'rr-1');
          assert.equal(d.job, 'RRJob');
          assert.equal(d.priority, 10);
          assert.deepEqual(d.headers, { tenant: ['acme'], x: ['1', '2'], custom: ['5'] });
          assert.equal(d.attempt, 1);
          await d.ack();
        });
      });

      test('a third-party message (no rr_* headers) is a job named after type, else the pipeline', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const p = await c.open(amqpPipeline(c.name('third'), opts({ exchange: '' })));
          const q = await c.open(amqpPipeline(c.name('third-job'), opts({ exchange: '' }), { job: 'DefaultJob' }));
          c.raw.ch.sendToQueue(p.queue, Buffer.from('hello'), { type: 'Billing.Charge', messageId: 'm-1', headers: { n: 5, flag: true, big: 2 ** 40, s: 'x' } });
          c.raw.ch.sendToQueue(p.queue, Buffer.from('bare'));
          c.raw.ch.sendToQueue(q.queue, Buffer.from('bare'));
          c.raw.ch.sendToQueue(p.queue, Buffer.from('bad'), { headers: { rr_headers: Buffer.from('{not json') } });
          const got = await collect(p, 3);
          const [typed, bare, bad] = got;
          assert.ok(typed && bare && bad);
          assert.equal(typed.job, 'Billing.Charge');
          assert.equal(typed.id, 'm-1');
          assert.equal(typed.messageId, 'm-1');
          assert.deepEqual(typed.headers, { n: ['5'], flag: ['true'], big: [String(2 ** 40)], s: ['x'], type: ['Billing.Charge'] });
          assert.equal(typed.invalid, undefined);
          assert.equal(bare.job, p.name);
          assert.match(bare.id, /^[0-9a-f-]{36}$/);
          assert.equal(bare.messageId, undefined);
          assert.match(bad.invalid ?? '', /^rr_headers is not JSON: /);
          const [viaSetting] = await collect(q, 1);
          assert.equal(viaSetting?.job, 'DefaultJob');
          await Promise.all([...got, viaSetting].map((d) => d?.ack()));
        });
      });

      test('prefetch is honoured: with prefetch 3 and nothing settled, exactly 3 are delivered', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const p = await c.open(amqpPipeline(c.name('prefetch'), opts({ exchange: '', prefetch: 3 })));
          for (let i = 0; i < 6; i++) await publish(p, {});
          const got: Delivery[] = [];
          await p.consume((d) => got.push(d));
          await waitFor('three deliveries', () => got.length >= 3);
          await sleep(400); // a fourth would come now if prefetch were not honoured
          assert.equal(got.length, 3);
          await got[0]?.ack();
          await waitFor('a fourth after one ack', () => got.length >= 4);
          await sleep(200);
          assert.equal(got.length, 4);
          await Promise.all(got.slice(1).map((d) => d.ack()));
          await waitFor('the rest', () => got.length === 6);
          await Promise.all(got.slice(4).map((d) => d.ack()));
          await p.cancel();
        });
      });

      test('multiple_ack: out-of-order acks all land; double settle is refused', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const cfg = amqpPipeline(c.name('multi'), opts({ exchange: '', prefetch: 10, multipleAck: true }));
          const p = await c.open(cfg);
          for (let i = 0; i < 8; i++) await publish(p, {});
          const got = await collect(p, 8);
          // delivery 3 stays unsettled: a multiple ack must never cover it
          const order = [1, 0, 2, 5, 7, 6, 4];
          await got[order[0]!]!.ack();
          await assert.rejects(got[order[0]!]!.ack(), (e: unknown) => e instanceof JobrunnerError && e.code === 'E_INTERNAL');
          await Promise.all(order.slice(1).map((i) => got[i]!.ack()));
          // close the consumer channel: what was not really acked goes back to the queue
          await p.close();
          const again = c.conn.pipeline(cfg);
          assert.equal(await again.readyCount(), 1);
        });
      });

      test('the first failed connect logs one redacted E_BROKER_CONNECT line; a URL list falls through', { timeout: T }, async () => {
        const lines: string[] = [];
        const stream = new PassThrough();
        stream.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
        const logger = createLogger({ level: 'info', destination: stream });
        const dead = await startTcpProxy('127.0.0.1', 1);
        const deadPort = dead.port;
        await dead.close(); // nothing listens there now
        const u = new URL(url);
        const bad = `amqp://guest:s3cret@127.0.0.1:${deadPort}/`;
        const conn = createAmqp091Connection({ config: { urls: [bad, `amqp://${u.username}:${u.password}@${u.host}/`] }, logger });
        try {
          await withTimeout(conn.start(), 10_000, 'connect through the list');
          assert.equal(conn.status().connected, true);
          assert.equal(conn.status().url, `amqp://${u.username}:***@${u.host}/`);
          await sleep(50);
          const errors = lines.filter((l) => l.includes('E_BROKER_CONNECT'));
          assert.equal(errors.length, 1);
          const msg = (JSON.parse(errors[0]!) as { msg: string }).msg;
          assert.equal(msg, `E_BROKER_CONNECT cannot connect to amqp://guest:***@127.0.0.1:${deadPort}/: ECONNREFUSED`);
          assert.ok(!lines.join('\n').includes('s3cret'));
        } finally {
          await conn.stop();
        }
      });

      test('broker down: status goes disconnected, publishes fail with E_PUBLISH, then it comes back', { timeout: T }, async () => {
        const u = new URL(url);
        const proxy = await startTcpProxy(u.hostname, Number(u.port || 5672));
        const conn = createAmqp091Connection({ config: { urls: [proxy.url(url)] }, logger: silentLogger() });
        const raw = await RawBroker.open(url);
        const q = `amqp091-down-${randomUUID().slice(0, 8)}`;
        try {
          await withTimeout(conn.start(), 10_000, 'connect');
          const p = conn.pipeline(amqpPipeline(q, opts({ exchange: '' })));
          await p.declare();
          const got: Delivery[] = [];
          await p.consume((d) => {
            got.push(d);
            void d.ack();
          });
          proxy.down();
          await waitFor('disconnected', () => !conn.status().connected);
          await assert.rejects(publish(p, {}), (e: unknown) => e instanceof JobrunnerError && e.code === 'E_PUBLISH');
          proxy.restore();
          await waitFor('reconnected', () => conn.status().connected);
          await publish(p, {});
          await waitFor('consuming again after the outage', () => got.length === 1);
          assert.equal(conn.status().reconnects, 1);
          await p.close();
        } finally {
          await conn.stop();
          await raw.deleteQueues([q]);
          await raw.close();
          await proxy.close();
        }
      });

      test('a publish no queue takes (unroutable) fails with E_PUBLISH instead of vanishing', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const x = c.name('unroutable-x');
          const q = c.name('unroutable');
          await c.raw.ch.assertExchange(x, 'direct', { durable: false });
          await c.raw.ch.assertQueue(q, { durable: false });
          // declare:false with a routing key nothing is bound with
          const p = await c.open(amqpPipeline(q, opts({ exchange: x, routingKey: 'nowhere', queueDeclare: false, exchangeDeclare: false })));
          await assert.rejects(publish(p, {}), (e: unknown) => {
            assert.ok(e instanceof JobrunnerError);
            assert.equal(e.code, 'E_PUBLISH');
            assert.match(e.message, new RegExp(`is unroutable: no queue is bound to exchange "${x}" with routing key "nowhere"$`));
            return true;
          });
          // the shared publish channel still works
          const ok = await c.open(amqpPipeline(c.name('routable'), opts({ exchange: '' })));
          await publish(ok, {});
          assert.equal(await ok.readyCount(), 1);
        });
      });

      test('stop() while still trying to connect ends start() and leaves nothing running', { timeout: T }, async () => {
        const dead = await startTcpProxy('127.0.0.1', 1);
        dead.down();
        const conn = createAmqp091Connection({ config: { urls: [dead.url(url)] }, logger: silentLogger() });
        try {
          const started = conn.start();
          await waitFor('a connect error in the status', () => conn.status().error !== undefined);
          assert.equal(conn.status().connected, false);
          assert.match(conn.status().error ?? '', /^cannot connect to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+\/?/);
          await conn.stop();
          await withTimeout(started, 2000, 'start() after stop()');
          await conn.stop(); // idempotent
        } finally {
          await dead.close();
        }
      });

      test('delete_queue_on_stop: close() deletes the queue', { timeout: T }, async () => {
        await withCtx(url, async (c) => {
          const p = c.conn.pipeline(amqpPipeline(c.name('del'), opts({ exchange: '', deleteQueueOnStop: true })));
          await p.declare();
          assert.equal(await p.readyCount(), 0);
          await p.close();
          await assert.rejects(c.raw.withChannel((ch) => ch.checkQueue(p.queue)));
        });
      });
    });
  }
}
