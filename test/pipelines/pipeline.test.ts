// src/pipelines/pipeline.ts on its own: a fake broker pipeline (deliveries handed in by the test, every
// settlement recorded) and a fake pool (the test answers each job). Same-id serialisation, what reaches
// the pool, pause (wait up to destroy_timeout, then release) and stop (wait, then release what is held).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { PipelineConfig } from '../../src/config/types.js';
import type { BrokerPipeline, Delivery, OutgoingJob } from '../../src/drivers/driver.js';
import { MEMORY_CAPABILITIES } from '../../src/drivers/memory/capabilities.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Pipeline } from '../../src/pipelines/pipeline.js';
import type { JobCallbacks, JobOutcome, PoolStats, WorkerJob, WorkerPool } from '../../src/pool/types.js';
import { deferred } from '../../src/shared/deferred.js';
import { waitFor } from '../helpers/wait.js';
import { pipelineConfig } from '../helpers/fake-settle.js';

const silent = pino({ level: 'silent' });

function config(destroyTimeoutMs = 60_000): PipelineConfig {
  return pipelineConfig({ pool: { maxConcurrency: 4, destroyTimeoutMs }, requeueOnFail: true, options: { prefetch: 10, priority: 0 } });
}

interface FakeBroker extends BrokerPipeline {
  deliver(d: Delivery): void;
  consuming: boolean;
  published: OutgoingJob[];
}

function fakeBroker(): FakeBroker {
  let onDelivery: ((d: Delivery) => void) | undefined;
  const b: FakeBroker = {
    name: 'p',
    queue: 'p',
    consuming: false,
    published: [],
    declare: async () => undefined,
    consume: async (cb) => {
      onDelivery = cb;
      b.consuming = true;
    },
    cancel: async () => {
      b.consuming = false;
    },
    publish: async (job) => void b.published.push(job),
    capabilities: () => MEMORY_CAPABILITIES,
    readyCount: async () => undefined,
    close: async () => undefined,
    deliver: (d) => {
      assert.ok(onDelivery && b.consuming, 'deliveries only while consuming');
      onDelivery(d);
    },
  };
  return b;
}

/** a delivery whose settlements go to `log` as "<id>:<what>" */
function delivery(log: string[], id: string, tag = id): Delivery {
  return {
    id,
    job: 'J',
    body: Buffer.from(JSON.stringify({ tag })),
    headers: {},
    attempt: 1,
    redelivered: false,
    queue: 'p',
    ack: async () => void log.push(`${tag}:ack`),
    reject: async (requeue: boolean, reason?: string) => void log.push(`${tag}:reject(${requeue}, ${reason ?? ''})`),
  };
}

interface Running {
  job: WorkerJob;
  callbacks: JobCallbacks;
  answer(outcome: JobOutcome): void;
}

interface FakePool extends WorkerPool {
  running: Running[];
  stopped: boolean;
}

function fakePool(): FakePool {
  const p: FakePool = {
    running: [],
    stopped: false,
    start: async () => undefined,
    run: (job, callbacks) => {
      const d = deferred<JobOutcome>();
      p.running.push({ job, callbacks, answer: (o) => d.resolve(o) });
      return d.promise;
    },
    stats: (): PoolStats => ({ workers: { starting: 0, ready: 1, busy: 0, stopping: 0 }, inFlight: p.running.length, queued: 0, crashLoop: 0 }),
    stop: async () => {
      p.stopped = true;
    },
    workers: async () => [],
    restarts: 0,
    reset: async () => undefined,
    releaseQueued: () => 0,
    on: () => p,
  };
  return p;
}

async function started(destroyTimeoutMs?: number) {
  const broker = fakeBroker();
  const pool = fakePool();
  const pipeline = new Pipeline({
    config: config(destroyTimeoutMs),
    broker,
    createPool: () => pool,
    publishTo: async (name, job) => void broker.published.push({ ...job, pipeline: name }),
    logger: silent,
    metrics: new Metrics({ defaults: false }),
  });
  await pipeline.resume();
  return { broker, pool, pipeline };
}

const tagOf = (r: Running | undefined): string => (JSON.parse(r?.job.body.toString() ?? '{}') as { tag: string }).tag;

test('a delivery reaches the pool as a neutral job; the answer settles it', async () => {
  const { broker, pool, pipeline } = await started();
  const log: string[] = [];
  broker.deliver({ ...delivery(log, 'a'), messageId: 'm-a', contentType: 'application/json', headers: { h: ['1'] } });
  assert.equal(pool.running.length, 1);
  const job = pool.running[0]?.job;
  assert.deepEqual({ ...job, body: job?.body.toString() }, {
    id: 'a',
    job: 'J',
    pipeline: 'p',
    body: '{"tag":"a"}',
    contentType: 'application/json',
    headers: { h: ['1'] },
    attempt: 1,
    driver: 'fake',
    queue: 'p',
    messageId: 'm-a',
    redelivered: false,
    traceparent: undefined,
  });
  assert.equal(pipeline.state().active, 1);
  pool.running[0]?.answer({ kind: 'ack' });
  await waitFor('the ack', () => log.includes('a:ack'));
  await waitFor('nothing held', () => pipeline.state().active === 0);
});

test('two deliveries with one id never run at once: the second waits for the first to settle', async () => {
  const { broker, pool } = await started();
  const log: string[] = [];
  broker.deliver(delivery(log, 'same', 'first'));
  broker.deliver(delivery(log, 'same', 'second'));
  broker.deliver(delivery(log, 'other'));
  assert.deepEqual(pool.running.map(tagOf), ['first', 'other'], 'the second with the same id is held back');
  pool.running[1]?.answer({ kind: 'ack' });
  await waitFor('other acked', () => log.includes('other:ack'));
  assert.equal(pool.running.length, 2, 'another id settling does not release it');
  pool.running[0]?.answer({ kind: 'ack' });
  await waitFor('the second dispatched', () => pool.running.length === 3);
  assert.equal(tagOf(pool.running[2]), 'second');
  assert.deepEqual(log, ['other:ack', 'first:ack']);
  pool.running[2]?.answer({ kind: 'ack' });
  await waitFor('second acked', () => log.includes('second:ack'));
});

test('follow-ups are published before the job is settled', async () => {
  const { broker, pool } = await started();
  const log: string[] = [];
  broker.deliver(delivery(log, 'parent'));
  const r = pool.running[0];
  r?.callbacks.onPublish({ pipeline: 'audit', job: 'Sent', body: Buffer.from('{}'), contentType: 'application/json', headers: {}, delayMs: 0 });
  r?.answer({ kind: 'ack' });
  await waitFor('the ack', () => log.includes('parent:ack'));
  assert.deepEqual(broker.published.map((j) => [j.pipeline, j.job]), [['audit', 'Sent']]);
});

test('pause waits up to destroy_timeout, then gives what is still held back to the broker; a later answer is ignored', async () => {
  const { broker, pool, pipeline } = await started(300);
  const log: string[] = [];
  broker.deliver(delivery(log, 'quick'));
  broker.deliver(delivery(log, 'slow'));
  broker.deliver(delivery(log, 'dup', 'dup-1'));
  broker.deliver(delivery(log, 'dup', 'dup-2')); // waits behind dup-1, never reaches the pool
  await pipeline.pause();
  assert.equal(broker.consuming, false);
  assert.equal(pipeline.isConsuming(), false);
  pool.running.find((r) => tagOf(r) === 'quick')?.answer({ kind: 'ack' });
  await waitFor('quick acked while paused', () => log.includes('quick:ack'));
  await waitFor('the rest released after destroy_timeout', () => pipeline.state().active === 0, 10_000);
  assert.deepEqual(log.slice(1).sort(), ['dup-1:reject(true, paused)', 'dup-2:reject(true, paused)', 'slow:reject(true, paused)']);
  assert.deepEqual(pool.running.map(tagOf), ['quick', 'slow', 'dup-1'], 'the waiting same-id delivery was released, not dispatched');
  pool.running.find((r) => tagOf(r) === 'slow')?.answer({ kind: 'ack' });
  await new Promise((r) => setImmediate(r));
  assert.ok(!log.includes('slow:ack'), 'a released job is not settled again');
  assert.equal(pool.stopped, false, 'pause keeps the workers');
  await pipeline.stop(1000, new Promise(() => undefined));
});

test('resume within destroy_timeout of a pause: the held jobs just go on', async () => {
  const { broker, pool, pipeline } = await started(200);
  const log: string[] = [];
  broker.deliver(delivery(log, 'held'));
  await pipeline.pause();
  await pipeline.resume();
  // past the pause's destroy_timeout: nothing was released
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(log.length, 0, 'nothing released');
  pool.running[0]?.answer({ kind: 'ack' });
  await waitFor('the ack', () => log.includes('held:ack'));
  await pipeline.stop(1000, new Promise(() => undefined));
});

test('stop waits for held jobs up to its timeout, releases the rest, then stops the pool', async () => {
  const { broker, pool, pipeline } = await started();
  const log: string[] = [];
  broker.deliver(delivery(log, 'done-in-time'));
  broker.deliver(delivery(log, 'too-slow'));
  const stopping = pipeline.stop(300, new Promise(() => undefined));
  pool.running[0]?.answer({ kind: 'ack' });
  await stopping;
  assert.deepEqual(log, ['done-in-time:ack', 'too-slow:reject(true, shutdown)']);
  assert.equal(pool.stopped, true);
  assert.equal(pipeline.state().active, 0);
});

test('stop with hurry skips the wait but still releases every held job', async () => {
  const { broker, pool, pipeline } = await started();
  const log: string[] = [];
  broker.deliver(delivery(log, 'a'));
  broker.deliver(delivery(log, 'b'));
  const hurry = deferred<void>();
  const stopping = pipeline.stop(60_000, hurry.promise);
  hurry.resolve();
  await stopping;
  assert.deepEqual(log.sort(), ['a:reject(true, shutdown)', 'b:reject(true, shutdown)']);
  assert.equal(pool.stopped, true);
});

test('stop is bounded when a settlement waits on a publish the broker never confirms: the job is not acked', { timeout: 30_000 }, async () => {
  const broker = fakeBroker();
  const pool = fakePool();
  const pipeline = new Pipeline({
    config: config(300),
    broker,
    createPool: () => pool,
    // a broker that takes the publish and never confirms it (a resource alarm, a lost disposition)
    publishTo: () => new Promise<void>(() => undefined),
    logger: silent,
    metrics: new Metrics({ defaults: false }),
  });
  await pipeline.resume();
  const log: string[] = [];
  broker.deliver(delivery(log, 'parent'));
  pool.running[0]?.callbacks.onPublish({ pipeline: 'audit', job: 'Sent', body: Buffer.from('{}'), contentType: 'application/json', headers: {}, delayMs: 0 });
  pool.running[0]?.answer({ kind: 'ack' });
  // the settlement waits on the follow-up's confirm for ever; stop goes on after destroy_timeout + the stop phase
  await pipeline.stop(300, new Promise(() => undefined));
  assert.equal(pool.stopped, true, 'the workers were stopped all the same');
  assert.deepEqual(log, [], 'not acked: the message stays with the broker');
});
