// The nats driver on its own against the nats-server in NATS_URLS: RoadRunner's envelope in and out, raw
// bodies from other producers, retryLater = nak(delay) with the server's delivery count as the attempt,
// working() heartbeats over a job three times ack_wait, a restart that resumes (RoadRunner's replay bug as
// a test), two connections sharing one durable consumer, an existing stream never rewritten, declare:
// false, deliver_new on first creation only, delete_after_ack, and Nats-Msg-Id de-duplication.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { AckPolicy } from '@nats-io/jetstream';
import { brokerUrls, collect, publish, sleep, waitFor } from './conformance.js';
import { createNatsConnection } from '../../src/drivers/nats/connection.js';
import type { BrokerPipeline, Delivery, DriverConnection } from '../../src/drivers/driver.js';
import type { PipelineConfig } from '../../src/config/types.js';
import type { NatsPipelineOptions } from '../../src/drivers/nats/options.js';
import { silentLogger } from '../../src/observability/logger.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { NatsAdmin, natsPipeline, type NatsPipelineConfig } from '../helpers/nats.js';

const urls = brokerUrls('NATS_URLS');
const url = urls?.[0] ?? 'nats://127.0.0.1:4222';
const T = 60_000;

interface Ctx {
  admin: NatsAdmin;
  /** a new connection, stopped at the end */
  conn(): Promise<DriverConnection>;
  /** a pipeline config with a unique stream; `name` is kept so two calls can name the same pipeline */
  cfg(over?: Partial<NatsPipelineOptions>, name?: string): NatsPipelineConfig;
  /** declared pipeline on a connection */
  open(conn: DriverConnection, cfg: NatsPipelineConfig): Promise<BrokerPipeline>;
}

async function withNats(body: (c: Ctx) => Promise<void>): Promise<void> {
  const admin = new NatsAdmin(url);
  const conns: DriverConnection[] = [];
  const pipes: BrokerPipeline[] = [];
  const run = randomUUID().slice(0, 8);
  const ctx: Ctx = {
    admin,
    async conn() {
      const c = createNatsConnection({ config: { urls: [url] }, logger: silentLogger(), backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 }, reconnectWaitMs: 200 });
      conns.push(c);
      await c.start();
      return c;
    },
    cfg(over = {}, name = `drv-${randomUUID().slice(0, 6)}`) {
      const full = `${name}-${run}`;
      const c = natsPipeline(full, over);
      admin.track(c.options.stream);
      return c;
    },
    async open(conn, cfg) {
      const p = conn.pipeline(cfg);
      pipes.push(p);
      await p.declare();
      return p;
    },
  };
  try {
    await body(ctx);
  } finally {
    for (const p of pipes.reverse()) await p.close().catch(() => undefined);
    for (const c of conns.reverse()) await c.stop().catch(() => undefined);
    await admin.cleanup();
  }
}

describe('nats driver', { skip: urls === undefined ? 'NATS_URLS is not set' : false, concurrency: false }, () => {
  test("RoadRunner's envelope in: id, job, payload, priority and headers", { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg();
      const pipe = await c.open(await c.conn(), cfg);
      const { js } = await c.admin.conn();
      const h = natsHeaders();
      h.append('tenant', 'acme');
      h.append('multi', 'a');
      h.append('multi', 'b');
      // exactly what RoadRunner's nats driver publishes (json.Marshal of its Item; []byte as base64)
      const envelope = { job: 'SendEmail', id: 'rr-1', payload: Buffer.from('{"to":"a@b.c"}').toString('base64'), options: { priority: 3, pipeline: 'rr', delay: 0, auto_ack: false } };
      await js.publish(cfg.options.subject, JSON.stringify(envelope), { headers: h });
      const [d] = await collect(pipe, 1);
      assert.ok(d);
      assert.equal(d.id, 'rr-1');
      assert.equal(d.job, 'SendEmail');
      assert.equal(d.body.toString(), '{"to":"a@b.c"}');
      assert.equal(d.priority, 3);
      assert.equal(d.attempt, 1);
      assert.equal(d.invalid, undefined);
      assert.deepEqual(d.headers['tenant'], ['acme']);
      assert.deepEqual(d.headers['multi'], ['a', 'b']);
      assert.deepEqual(d.headers['x-nats-subject'], [cfg.options.subject]);
      await d.ack();
    });
  });

  test('raw bodies from any producer are jobs: text, a JSON object that is not the envelope, bad base64, binary, empty', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg();
      const pipe = await c.open(await c.conn(), cfg);
      const { js } = await c.admin.conn();
      const bodies: Buffer[] = [
        Buffer.from('hello'),
        Buffer.from('{"order":1,"job":""}'),
        Buffer.from('{"job":"x","id":"y","payload":"not base64!"}'),
        Buffer.from([0, 255, 1, 254]),
        Buffer.alloc(0),
        Buffer.from('[1,2]'),
      ];
      for (const [i, b] of bodies.entries()) await js.publish(cfg.options.subject, b, i === 0 ? { msgID: 'given-id' } : {});
      const got = await collect(pipe, bodies.length);
      assert.equal(got.length, bodies.length);
      for (const [i, d] of got.entries()) {
        assert.deepEqual(d.body, bodies[i], `body ${i}`);
        assert.equal(d.job, cfg.name, `job name ${i}: the pipeline's name`);
        assert.equal(d.invalid, undefined);
      }
      assert.equal(got[0]?.id, 'given-id', 'Nats-Msg-Id is the id');
      assert.equal(got[0]?.messageId, 'given-id');
      assert.match(got[1]?.id ?? '', new RegExp(`^${cfg.options.stream}-\\d+$`), 'stream and sequence: the same id on every redelivery');
      // the id of a raw message stays the same when it comes back
      const firstId = got[1]?.id;
      for (const [i, d] of got.entries()) await (i === 1 ? d.reject(true) : d.ack());
      const [again] = await collect(pipe, 1);
      assert.equal(again?.id, firstId);
      assert.equal(again?.attempt, 2);
      await again?.ack();
    });
  });

  test("jobrunner writes what RoadRunner's nats driver reads", { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg();
      const pipe = await c.open(await c.conn(), cfg);
      const id = await publish(pipe, { job: 'Resize', body: Buffer.from([1, 2, 3]), headers: { tenant: ['acme'] }, priority: 7 });
      const { js, jsm } = await c.admin.conn();
      await jsm.consumers.add(cfg.options.stream, { durable_name: 'peek', ack_policy: AckPolicy.Explicit });
      const peek = await js.consumers.get(cfg.options.stream, 'peek');
      const m = await peek.next({ expires: 5000 });
      assert.ok(m);
      const e = JSON.parse(m.string()) as { job: string; id: string; payload: string; options: { priority: number; pipeline: string; delay: number; auto_ack: boolean } };
      assert.equal(e.job, 'Resize');
      assert.equal(e.id, id);
      assert.deepEqual(Buffer.from(e.payload, 'base64'), Buffer.from([1, 2, 3]));
      assert.deepEqual(e.options, { priority: 7, pipeline: cfg.name, delay: 0, auto_ack: false });
      assert.equal(m.headers?.get('tenant'), 'acme');
      assert.equal(m.headers?.get('Nats-Msg-Id'), id);
      assert.equal(m.subject, cfg.options.subject);
      m.ack();
    });
  });

  test('retryLater(d) = nak(d): back after at least d, the delivery count is the attempt', { timeout: T }, async () => {
    await withNats(async (c) => {
      const pipe = await c.open(await c.conn(), c.cfg());
      const id = await publish(pipe, {});
      const seen: { d: Delivery; at: number }[] = [];
      await pipe.consume((d) => {
        seen.push({ d, at: Date.now() });
        if (seen.length === 1) void (d as Delivery & { retryLater(ms: number): Promise<void> }).retryLater(1200);
        else void d.ack();
      });
      await waitFor('the redelivery', () => seen.length >= 2);
      await pipe.cancel();
      const [a, b] = seen as [{ d: Delivery; at: number }, { d: Delivery; at: number }];
      assert.equal(a.d.id, id);
      assert.equal(b.d.id, id);
      assert.equal(a.d.attempt, 1);
      assert.equal(b.d.attempt, 2);
      assert.ok(b.at - a.at >= 1200, `back after ${b.at - a.at} ms`);
    });
  });

  test('a delivery held three times ack_wait is kept alive by working() and delivered once', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ ackWaitMs: 1000 });
      const pipe = await c.open(await c.conn(), cfg);
      await publish(pipe, {});
      const seen: Delivery[] = [];
      await pipe.consume((d) => seen.push(d));
      await waitFor('the delivery', () => seen.length === 1);
      await sleep(3500);
      assert.equal(seen.length, 1, 'not redelivered while held');
      await seen[0]?.ack();
      const { jsm } = await c.admin.conn();
      const info = await jsm.consumers.info(cfg.options.stream, cfg.options.consumer);
      assert.equal(info.num_redelivered, 0);
      await pipe.cancel();
    });
  });

  test("a restart resumes where it left: no acked message comes back (RoadRunner's replay bug)", { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ prefetch: 5 });
      const first = await c.conn();
      const pipeA = await c.open(first, cfg);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await publish(pipeA, {}));
      // the first daemon acks 12, holds 5 when it stops, and gives those back unacked
      const acked = new Set<string>();
      const held: Delivery[] = [];
      await pipeA.consume((d) => {
        if (acked.size < 12) {
          acked.add(d.id);
          void d.ack();
        } else held.push(d);
      });
      await waitFor('12 acked and 5 held', () => acked.size === 12 && held.length === 5);
      await pipeA.cancel();
      for (const d of held) await d.reject(true, 'shutdown');
      await first.stop();
      // a new daemon on the same pipeline: exactly the 8 not acked, each once
      const second = await c.conn();
      const pipeB = await c.open(second, cfg);
      const got: string[] = [];
      await pipeB.consume((d) => {
        got.push(d.id);
        void d.ack();
      });
      await waitFor('the 8 not acked', () => got.length >= 8);
      await sleep(1000);
      await pipeB.cancel();
      assert.deepEqual([...got].sort(), ids.filter((id) => !acked.has(id)).sort());
      assert.equal(await pipeB.readyCount(), 0);
      // and a third start after everything was acked gets nothing at all
      await second.stop();
      const third = await c.conn();
      const pipeC = await c.open(third, cfg);
      const none: string[] = [];
      await pipeC.consume((d) => none.push(d.id));
      await sleep(1500);
      await pipeC.cancel();
      assert.deepEqual(none, []);
    });
  });

  test('two connections on one durable consumer share the work: each message once', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ prefetch: 2 });
      const a = await c.open(await c.conn(), cfg);
      const b = await c.open(await c.conn(), cfg);
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) ids.add(await publish(a, {}));
      const byA: string[] = [];
      const byB: string[] = [];
      const handler = (into: string[]) => (d: Delivery) => {
        into.push(d.id);
        setTimeout(() => void d.ack(), 20);
      };
      await a.consume(handler(byA));
      await b.consume(handler(byB));
      await waitFor('all 40', () => byA.length + byB.length >= 40);
      await sleep(500);
      await a.cancel();
      await b.cancel();
      const all = [...byA, ...byB];
      assert.equal(all.length, 40, 'no message twice');
      assert.deepEqual(new Set(all), ids);
      assert.ok(byA.length > 0 && byB.length > 0, `both worked: ${byA.length} / ${byB.length}`);
    });
  });

  test('an existing stream is never rewritten: a subject it does not take is a clear error', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg();
      const { jsm } = await c.admin.conn();
      await jsm.streams.add({ name: cfg.options.stream, subjects: ['other.subject', 'more.>'] });
      const conn = await c.conn();
      await assert.rejects(c.open(conn, cfg), (err: unknown) => {
        assert.ok(err instanceof JobrunnerError);
        assert.equal(err.code, 'E_BROKER_DECLARE');
        assert.equal(
          err.message,
          `pipeline ${cfg.name}: stream \`${cfg.options.stream}\` exists with subjects [other.subject, more.>], which do not take subject \`${cfg.options.subject}\`; jobrunner never rewrites an existing stream: add the subject to it (nats stream edit ${cfg.options.stream} --subjects ...) or use another stream or subject`,
        );
        return true;
      });
      assert.deepEqual((await jsm.streams.info(cfg.options.stream)).config.subjects, ['other.subject', 'more.>']);
      // a subject the stream takes through a wildcard is fine
      const ok = await c.open(conn, { ...cfg, options: { ...cfg.options, subject: 'more.jobs' } });
      await publish(ok, {});
      assert.equal(await ok.readyCount(), 1);
    });
  });

  test('declare: false uses the stream and consumer as they exist and creates nothing', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ declare: false });
      const conn = await c.conn();
      await assert.rejects(c.open(conn, cfg), /stream `.*` does not exist and declare is false/);
      const { jsm } = await c.admin.conn();
      await jsm.streams.add({ name: cfg.options.stream, subjects: [cfg.options.subject] });
      await assert.rejects(c.open(conn, cfg), /consumer `.*` does not exist on stream `.*` and declare is false/);
      await jsm.consumers.add(cfg.options.stream, { durable_name: cfg.options.consumer, ack_policy: AckPolicy.Explicit });
      const pipe = await c.open(conn, cfg);
      const id = await publish(pipe, {});
      const [d] = await collect(pipe, 1);
      assert.equal(d?.id, id);
      await d?.ack();
      const names: string[] = [];
      for await (const s of jsm.streams.list()) names.push(s.config.name);
      assert.ok(!names.includes(`JOBRUNNER_DELAY_${cfg.options.stream}`), 'no delay stream made');
    });
  });

  test('deliver_new applies when the consumer is created, not on a restart', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ deliverNew: true });
      const { js, jsm } = await c.admin.conn();
      await jsm.streams.add({ name: cfg.options.stream, subjects: [cfg.options.subject] });
      await js.publish(cfg.options.subject, 'old');
      const conn = await c.conn();
      const pipe = await c.open(conn, cfg);
      const fresh = await publish(pipe, {});
      const [d] = await collect(pipe, 1);
      assert.equal(d?.id, fresh, 'the message from before the consumer is skipped');
      await d?.ack();
      await pipe.close();
      // published while no daemon runs: delivered after the restart
      const whileDown = await publish(await c.open(conn, { ...cfg, name: `${cfg.name}-pusher`, options: { ...cfg.options, consumer: 'pusher' } }), {});
      const again = await c.open(await c.conn(), cfg);
      const [e] = await collect(again, 1);
      assert.equal(e?.id, whileDown);
      await e?.ack();
    });
  });

  test('delete_after_ack removes acked messages from the stream', { timeout: T }, async () => {
    await withNats(async (c) => {
      const cfg = c.cfg({ deleteAfterAck: true });
      const pipe = await c.open(await c.conn(), cfg);
      for (let i = 0; i < 3; i++) await publish(pipe, {});
      const got = await collect(pipe, 3);
      for (const d of got) await d.ack();
      const { jsm } = await c.admin.conn();
      assert.equal((await jsm.streams.info(cfg.options.stream)).state.messages, 0);
    });
  });

  test('a push of an id already pushed is dropped by the server (Nats-Msg-Id); a retry copy is not', { timeout: T }, async () => {
    await withNats(async (c) => {
      const pipe = await c.open(await c.conn(), c.cfg());
      await publish(pipe, { id: 'same' });
      await publish(pipe, { id: 'same' });
      assert.equal(await pipe.readyCount(), 1);
      await publish(pipe, { id: 'same', attempt: 2 });
      assert.equal(await pipe.readyCount(), 2);
    });
  });
});
