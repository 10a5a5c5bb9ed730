// The driver conformance suite: the same node:test cases run against every broker driver and every broker
// version (STYLE.md: one contract test suite for every adapter). A driver test file calls
// runConformance(label, make) where make() gives a fresh DriverConnection and turns neutral pipeline
// options into that driver's PipelineConfig. Every test counts messages in and out; none times anything
// beyond "absent before, present after".

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { PipelineConfig } from '../../src/config/types.js';
import type { BrokerPipeline, ConnectionStatus, Delivery, DriverConnection, OutgoingJob } from '../../src/drivers/driver.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { sleep, waitFor } from '../helpers/wait.js';

export interface ConformancePipelineOptions {
  /** unique; the target derives the queue name from it */
  name: string;
  prefetch?: number;
  /** the broker dead-letters rejected (requeue=false) messages of this pipeline into that pipeline's queue */
  deadLetterTo?: PipelineConfig;
}

export interface ConformanceTarget {
  conn: DriverConnection;
  /** set when the target was asked for a proxied connection (a driver whose capabilities say inProcess has none) */
  proxy?: TcpProxy;
  pipeline(opts: ConformancePipelineOptions): PipelineConfig;
  /**
   * For a driver whose own dead-lettering keeps no queue to consume (memory's dead-letter list): the ids
   * dead-lettered from this pipeline so far. Absent: they land in the `deadLetterTo` pipeline's queue.
   */
  deadLettered?(pipe: BrokerPipeline): string[];
  /**
   * For a broker the driver cannot count on (capabilities.readyCount false, e.g. amqp1 on RabbitMQ 3.x):
   * the ready count read from the side (AMQP 0-9-1 queue.declare passive), so the suite's
   * "queue empty" checks are not vacuous there either.
   */
  countReady?(pipe: BrokerPipeline): Promise<number>;
  /**
   * For a broker that keeps a message it handed out as unacknowledged until a timeout, rather than taking
   * it back when the connection closes (JetStream: the consumer's num_ack_pending, until ack_wait): how
   * many it holds so. An ack written just before a cut is lost with the connection and the message comes
   * back only after that timeout, so the cut case waits for this to reach 0. Absent: the broker takes
   * such messages back at once (AMQP requeues them when the connection closes), the ready count shows them.
   */
  countUnacked?(pipe: BrokerPipeline): Promise<number>;
  /**
   * Deliveries are not tied to a connection (SQS: a receipt handle stays good until its visibility
   * timeout): after a cut, held deliveries still settle instead of failing with E_STALE_DELIVERY.
   */
  connectionless?: boolean;
  /**
   * Settlement is a request and its answer (SQS; amqp1 on RabbitMQ 3.x, where the broker confirms each
   * disposition), not a frame written to a socket: the mixed-settlement case issues its acks one per
   * pace(previous ack) instead of one per loop turn (a loop turn is far shorter than a round trip, so the
   * test would measure the network, not whether the reject is held back).
   */
  pace?: (previous: Promise<void>) => Promise<void>;
  /** deletes every queue/exchange the target's pipelines used, closes the proxy; never throws */
  cleanup(): Promise<void>;
}

export type ConformanceFactory = (opts: { proxied: boolean }) => Promise<ConformanceTarget>;

export interface ConformanceOptions {
  /**
   * Only the basic cases, about the connection carrying jobs (publish, consume, ack, reject, requeue,
   * dead letter, delay, headers, cancel), not the fault cases (a cut connection): for a second run of a
   * driver over another connection config, e.g. TLS (test/drivers/tls-conformance.test.ts).
   */
  basic?: boolean;
}

const T = 30_000;

/** Registers the conformance cases under describe(label). */
export function runConformance(label: string, make: ConformanceFactory, options: ConformanceOptions = {}): void {
  describe(`conformance: ${label}`, { concurrency: false }, () => {
    test('N published = N delivered and acked; queue empty after', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const N = 25;
        const pipe = await open(t, p('n'));
        const ids = new Set<string>();
        for (let i = 0; i < N; i++) ids.add(await publish(pipe, { body: Buffer.from(`m${i}`) }));
        assert.equal(ids.size, N);
        const acked = new Set<string>();
        const extra: string[] = [];
        await pipe.consume((d) => {
          void d.ack().then(() => (acked.has(d.id) ? extra.push(d.id) : acked.add(d.id)));
        });
        await waitFor('all N acked', () => acked.size === N);
        await pipe.cancel();
        assert.deepEqual([...acked].sort(), [...ids].sort());
        assert.deepEqual(extra, []);
        await assertReady(t, pipe, 0);
      });
    });

    test('200 publishes at once (delayed ones among them) are each confirmed and delivered once, with no Node warning', { timeout: T }, async () => {
      // a driver that adds a listener per publish in flight (a credit or connection wait, a confirm)
      // makes Node print a MaxListenersExceededWarning past 10, outside the JSON log
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
      process.on('warning', onWarning);
      try {
        await withTarget(make, false, async (t, p) => {
          const N = 200;
          const pipe = await open(t, p('burst', { prefetch: 50 }));
          const delays = pipe.capabilities().delays !== 'none';
          const jobs: OutgoingJob[] = Array.from({ length: N }, (_, i) => ({
            id: randomUUID(),
            job: 'Burst',
            pipeline: pipe.name,
            body: Buffer.from(`b${i}`),
            contentType: 'application/json',
            headers: {},
            delayMs: delays && i % 4 === 0 ? 1500 : 0,
          }));
          await withTimeout(Promise.all(jobs.map((j) => pipe.publish(j))), T / 2, `${N} publishes confirmed`);
          const acked = new Set<string>();
          const extra: string[] = [];
          await pipe.consume((d) => {
            void d.ack().then(() => (acked.has(d.id) ? extra.push(d.id) : acked.add(d.id)));
          });
          await waitFor(`all ${N} acked`, () => acked.size === N);
          await pipe.cancel();
          assert.deepEqual([...acked].sort(), jobs.map((j) => j.id).sort());
          assert.deepEqual(extra, []);
        });
        assert.deepEqual(warnings, [], 'no Node warning');
      } finally {
        process.off('warning', onWarning);
      }
    });

    test('publish resolves after the broker confirms: the message is in the queue', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const pipe = await open(t, p('confirm'));
        await publish(pipe, {});
        await publish(pipe, {});
        await assertReady(t, pipe, 2);
        const got = await collect(pipe, 2);
        assert.equal(got.length, 2);
        await Promise.all(got.map((d) => d.ack()));
      });
    });

    test('reject(true) comes back redelivered', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const pipe = await open(t, p('requeue'));
        const id = await publish(pipe, {});
        const seen: Delivery[] = [];
        await pipe.consume((d) => {
          seen.push(d);
          if (seen.length === 1) void d.reject(true);
          else void d.ack();
        });
        await waitFor('redelivery', () => seen.length >= 2);
        await pipe.cancel();
        assert.equal(seen[0]?.id, id);
        assert.equal(seen[0]?.redelivered, false);
        assert.equal(seen[1]?.id, id);
        assert.equal(seen[1]?.redelivered, true);
      });
    });

    test('a reject among steady acks is settled while the acks go on, and each lands as itself', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const N = 12;
        const pipe = await open(t, p('mixed', { prefetch: N }));
        for (let i = 0; i < N; i++) await publish(pipe, {});
        const got = await collect(pipe, N);
        assert.equal(got.length, N);
        const [first, rejected, ...rest] = got as [Delivery, Delivery, ...Delivery[]];
        // an ack, the reject, then one ack per turn of the event loop: a driver that batches settlements
        // must not hold the reject back until the acks stop
        const acks: Promise<void>[] = [first.ack()];
        let acksIssued = 0;
        let acksIssuedWhenRejectLanded = -1;
        const rejectDone = rejected.reject(true).then(() => (acksIssuedWhenRejectLanded = acksIssued));
        for (const d of rest) {
          await (t.pace?.(acks[acks.length - 1]!) ?? new Promise<void>((r) => setImmediate(r)));
          acks.push(d.ack());
          acksIssued++;
        }
        await Promise.all([rejectDone, ...acks]);
        assert.ok(acksIssuedWhenRejectLanded >= 0 && acksIssuedWhenRejectLanded < rest.length, `the reject landed after ${acksIssuedWhenRejectLanded} of ${rest.length} acks`);
        // the rejected one alone comes back, redelivered; the acked ones are gone
        const again = await collect(pipe, 1);
        await sleep(300);
        assert.deepEqual(
          again.map((d) => [d.id, d.redelivered]),
          [[rejected.id, true]],
        );
        await again[0]?.ack();
        await assertReady(t, pipe, 0);
      });
    });

    test('reject(false) lands in the queue dead-letter target (or is terminated where the broker has no dead-lettering)', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const dlqCfg = p('dlq');
        const dlq = await open(t, dlqCfg);
        const pipe = await open(t, p('main', { deadLetterTo: dlqCfg }));
        const id = await publish(pipe, { body: Buffer.from('dead') });
        const first = await collect(pipe, 1);
        await first[0]?.reject(false, 'test dead letter');
        if (!pipe.capabilities().nativeDeadLetter || t.deadLettered !== undefined) {
          // terminated, or in a dead-letter store of the driver's own: never delivered again here
          if (t.deadLettered !== undefined) await waitFor('the dead-lettered id', () => t.deadLettered!(pipe).includes(id));
          const again: Delivery[] = [];
          await pipe.consume((d) => again.push(d));
          await sleep(300);
          await pipe.cancel();
          assert.deepEqual(again.map((d) => d.id), []);
          await assertReady(t, pipe, 0);
          return;
        }
        const dead = await collect(dlq, 1);
        assert.equal(dead.length, 1);
        assert.equal(dead[0]?.id, id);
        assert.equal(dead[0]?.body.toString(), 'dead');
        await dead[0]?.ack();
        await assertReady(t, pipe, 0);
      });
    });

    test('a delayed publish is absent before its delay and present after', { timeout: T }, async (tc) => {
      await withTarget(make, false, async (t, p) => {
        const pipe = await open(t, p('delay'));
        if (pipe.capabilities().delays === 'none') return void tc.skip('the broker takes no delays (capabilities.delays: none)');
        const delayed = await publish(pipe, { delayMs: 1500, body: Buffer.from('later') });
        const now = await publish(pipe, { body: Buffer.from('now') });
        const order: string[] = [];
        await pipe.consume((d) => {
          order.push(d.id);
          void d.ack();
        });
        await waitFor('the immediate message', () => order.length >= 1);
        assert.deepEqual(order, [now], 'the delayed message must not come before the immediate one');
        await waitFor('the delayed message', () => order.length >= 2);
        await pipe.cancel();
        assert.deepEqual(order, [now, delayed]);
      });
    });

    test('id, job, headers, attempt, priority, traceparent and content type round-trip', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const pipe = await open(t, p('headers'));
        const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
        const id = await publish(pipe, {
          job: 'SendEmail',
          body: Buffer.from('{"to":"a@b.c"}'),
          contentType: 'application/json',
          headers: { tenant: ['acme'], multi: ['a', 'b'] },
          attempt: 3,
          priority: 4,
          traceparent: tp,
        });
        const [d] = await collect(pipe, 1);
        assert.ok(d);
        assert.equal(d.id, id);
        assert.equal(d.job, 'SendEmail');
        assert.equal(d.body.toString(), '{"to":"a@b.c"}');
        assert.equal(d.contentType, 'application/json');
        assert.deepEqual(d.headers['tenant'], ['acme']);
        assert.deepEqual(d.headers['multi'], ['a', 'b']);
        assert.equal(d.attempt, 3);
        assert.equal(d.traceparent, tp);
        assert.equal(d.invalid, undefined);
        assert.equal(d.redelivered, false);
        assert.equal(d.queue, pipe.queue);
        await d.ack();
      });
    });

    test('after cancel nothing more is delivered; consume again resumes', { timeout: T }, async () => {
      await withTarget(make, false, async (t, p) => {
        const pipe = await open(t, p('cancel'));
        await publish(pipe, {});
        const got: Delivery[] = [];
        await pipe.consume((d) => got.push(d));
        await waitFor('first delivery', () => got.length === 1);
        await pipe.cancel();
        await got[0]?.ack(); // settling after cancel still works
        await publish(pipe, {});
        await publish(pipe, {});
        // absent: give the broker a moment to (wrongly) deliver, then check nothing came
        await sleep(500);
        assert.equal(got.length, 1);
        await assertReady(t, pipe, 2);
        const more = await collect(pipe, 2);
        assert.equal(more.length, 2);
        await Promise.all(more.map((d) => d.ack()));
      });
    });

    if (options.basic === true) return;

    // ---- fault cases ----

    test('connection cut: old deliveries are stale, consuming resumes, nothing lost', { timeout: 3 * T }, async (tc) => {
      await withTarget(make, true, async (t, p) => {
        const PREFETCH = 5;
        const pipe = await open(t, p('cut', { prefetch: PREFETCH }));
        if (pipe.capabilities().inProcess) return void tc.skip('in-process driver: no connection to cut (capabilities.inProcess)');
        const proxy = t.proxy;
        assert.ok(proxy, 'the target must give a proxy when asked for one');
        const statuses: ConnectionStatus[] = [];
        const onStatus = (s: ConnectionStatus): void => void statuses.push(s);
        t.conn.on('status', onStatus);
        try {
          const N = 20;
          const ids = new Set<string>();
          for (let i = 0; i < N; i++) ids.add(await publish(pipe, {}));
          const held: Delivery[] = [];
          const acked = new Set<string>();
          // deliveries of an id whose ack had resolved: an ack written just before the cut is lost with the
          // connection, and the broker hands that message out again (docs/failures.md: at most the prefetch)
          let duplicates = 0;
          let cutDone = false;
          await pipe.consume((d) => {
            if (acked.has(d.id)) duplicates++;
            if (!cutDone && held.length < 3) {
              held.push(d);
              return;
            }
            d.ack().then(
              () => acked.add(d.id),
              () => undefined, // stale after a second cut: the broker redelivers it
            );
          });
          await waitFor('three held deliveries', () => held.length === 3);
          cutDone = true;
          proxy.cut();
          const counts = (): void => {
            const lost = [...ids].filter((id) => !acked.has(id));
            tc.diagnostic(`published ${N} / acked ${acked.size} / lost ${lost.length} / duplicates ${duplicates} (bound: ${PREFETCH}, the prefetch)`);
            assert.deepEqual([...acked].sort(), [...ids].sort());
            assert.ok(duplicates <= PREFETCH, `${duplicates} duplicates for ${PREFETCH} in flight at the cut`);
          };
          if (t.connectionless === true) {
            // nothing to go stale: the held ones settle after the cut, and nothing is lost or doubled
            for (const d of held) await d.ack().then(() => acked.add(d.id));
            await waitFor(`all ${N} acked after the cut`, () => acked.size === N);
            await waitFor('the broker holding nothing of the pipeline', () => brokerHoldsNothing(t, pipe), T, 100);
            await pipe.cancel();
            counts();
            await assertReady(t, pipe, 0);
            return;
          }
          await waitFor('a disconnected status', () => statuses.some((s) => !s.connected));
          for (const d of held) {
            await assert.rejects(d.ack(), (err: unknown) => err instanceof JobrunnerError && err.code === 'E_STALE_DELIVERY');
          }
          await assert.rejects(held[0]!.reject(true), (err: unknown) => err instanceof JobrunnerError && err.code === 'E_STALE_DELIVERY');
          await waitFor('reconnected', () => t.conn.status().connected);
          await waitFor(`all ${N} acked after the cut`, () => acked.size === N, T);
          // Every id acked once is not the end: an ack lost with the cut brings its message back (at once on
          // AMQP, after ack_wait on JetStream), maybe after the last id was acked. Still consuming, wait
          // until the broker holds nothing of the pipeline, neither ready nor handed out and unacked: then
          // every copy has come and been acked, and cancelling cannot leave one in flight.
          await waitFor('the broker holding nothing of the pipeline', () => brokerHoldsNothing(t, pipe), T, 100);
          assert.ok(t.conn.status().reconnects >= 1);
          await pipe.cancel();
          counts();
          await assertReady(t, pipe, 0);
        } finally {
          t.conn.off('status', onStatus);
        }
      });
    });
  });
}

// ---- helpers ------------------------------------------------------------------------------------

/**
 * True when the broker holds nothing of the pipeline: its ready count (as assertReady reads it, where it
 * can be read) is 0, and so is its count of messages handed out and unacked where the target can read
 * one (countUnacked).
 */
async function brokerHoldsNothing(t: ConformanceTarget, pipe: BrokerPipeline): Promise<boolean> {
  const ready = pipe.capabilities().readyCount ? await pipe.readyCount() : await t.countReady?.(pipe);
  if (ready !== undefined && ready !== 0) return false;
  return t.countUnacked === undefined || (await t.countUnacked(pipe)) === 0;
}

/**
 * Where the pipeline's capabilities say it can count its ready messages, the count must be `n` (the
 * broker may take a moment to count settlements: polled, with a bound); where they say it cannot, it
 * must answer undefined, and the target's side count (countReady), when it has one, must be `n`.
 */
export async function assertReady(t: ConformanceTarget, pipe: BrokerPipeline, n: number): Promise<void> {
  let count: () => Promise<number | undefined> = () => pipe.readyCount();
  let what = 'ready count (capabilities.readyCount is true)';
  if (!pipe.capabilities().readyCount) {
    assert.equal(await pipe.readyCount(), undefined, 'capabilities.readyCount is false: readyCount() must answer undefined');
    if (t.countReady === undefined) return;
    count = () => t.countReady!(pipe);
    what = 'ready count read from the side';
  }
  let last: number | undefined;
  for (const until = Date.now() + 10_000; Date.now() < until; await sleep(100)) {
    last = await count();
    if (last === n) return;
  }
  assert.equal(last, n, what);
}

/** The queue of a pipeline config, whatever its driver ('' for pipelines without one). */
export function queueOf(cfg: PipelineConfig): string {
  const o = cfg.options as { queue?: unknown };
  return typeof o.queue === 'string' ? o.queue : '';
}

type PipelineMaker = (suffix: string, extra?: Omit<ConformancePipelineOptions, 'name'>) => PipelineConfig;

async function withTarget(make: ConformanceFactory, proxied: boolean, body: (t: ConformanceTarget, p: PipelineMaker) => Promise<void>): Promise<void> {
  const t = await make({ proxied });
  const run = randomUUID().slice(0, 8);
  const opened: BrokerPipeline[] = [];
  const p: PipelineMaker = (suffix, extra) => t.pipeline({ name: `conf-${suffix}-${run}`, ...extra });
  (t as ConformanceTarget & { opened?: BrokerPipeline[] }).opened = opened;
  try {
    await withTimeout(t.conn.start(), 10_000, 'connection start');
    await body(t, p);
  } finally {
    for (const pipe of opened.reverse()) await pipe.close().catch(() => undefined);
    await t.conn.stop().catch(() => undefined);
    await t.cleanup().catch(() => undefined);
  }
}

async function open(t: ConformanceTarget, cfg: PipelineConfig): Promise<BrokerPipeline> {
  const pipe = t.conn.pipeline(cfg);
  (t as ConformanceTarget & { opened?: BrokerPipeline[] }).opened?.push(pipe);
  await pipe.declare();
  return pipe;
}

/** Publishes a job to the pipeline, returns its id. */
export async function publish(pipe: BrokerPipeline, over: Partial<OutgoingJob>): Promise<string> {
  const job: OutgoingJob = {
    id: randomUUID(),
    job: 'Test',
    pipeline: pipe.name,
    body: Buffer.from('{}'),
    contentType: 'application/json',
    headers: {},
    delayMs: 0,
    ...over,
  };
  await withTimeout(pipe.publish(job), 10_000, 'publish confirm');
  return job.id;
}

/** Consumes until n deliveries arrived (unsettled), then cancels. */
export async function collect(pipe: BrokerPipeline, n: number): Promise<Delivery[]> {
  const got: Delivery[] = [];
  await pipe.consume((d) => got.push(d));
  try {
    await waitFor(`${n} deliveries from ${pipe.queue}`, () => got.length >= n);
  } finally {
    await pipe.cancel();
  }
  return got;
}

export { sleep, waitFor };

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Broker URLs from the environment; undefined means skip (a failure under CI=true). */
export function brokerUrls(variable: string): string[] | undefined {
  const v = process.env[variable]?.trim();
  if (v) return v.split(/\s+/);
  if (process.env['CI'] === 'true') throw new Error(`${variable} is not set (CI=true): run eval "$(sudo scripts/test-servers.sh)"`);
  return undefined;
}
