// amqp1 publishes and link credit, against a peer that grants credit only when the test says so
// (test/helpers/credit-peer.ts): publishes beyond the credit wait, in order, for the `sendable` event
// and are then sent once each; one that gets no credit within its wait fails naming the cause and is
// never sent later; a lost connection fails the waiting ones at once. Many publishes waiting at once
// add no listener each (no MaxListenersExceededWarning).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { BrokerPipeline, DriverConnection, OutgoingJob } from '../../src/drivers/driver.js';
import { silentLogger } from '../../src/observability/logger.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { waitFor, withTimeout } from './conformance.js';
import { amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { startCreditPeer, type CreditPeer } from '../helpers/credit-peer.js';

function job(pipeline: string): OutgoingJob {
  return { id: randomUUID(), job: 'Credit', pipeline, body: Buffer.from('{}'), contentType: 'application/json', headers: {}, delayMs: 0 };
}

type Settled = { id: string; ok: boolean; err?: unknown };

/** publishes each job, recording how each ended */
function fire(pipe: BrokerPipeline, jobs: OutgoingJob[], into: Settled[]): Promise<void>[] {
  return jobs.map((j) =>
    pipe.publish(j).then(
      () => void into.push({ id: j.id, ok: true }),
      (err: unknown) => void into.push({ id: j.id, ok: false, err }),
    ),
  );
}

async function withPeer(waitMs: number, body: (peer: CreditPeer, pipe: BrokerPipeline, conn: DriverConnection) => Promise<void>): Promise<void> {
  const peer = await startCreditPeer();
  const conn = createAmqp1Connection({
    config: { urls: [peer.url], containerId: 'credit-test', idleTimeoutMs: 30_000 },
    logger: silentLogger(),
    backoff: { initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0 },
  });
  try {
    await withTimeout(conn.start(), 30_000, 'connect to the credit peer');
    await body(peer, conn.pipeline(amqp1Pipeline('credit-q', { redialTimeoutMs: waitMs })), conn);
  } finally {
    await conn.stop();
    await peer.close();
  }
}

test('amqp1: publishes beyond the link credit wait, in order, and are each sent once when credit comes', { timeout: 120_000 }, async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    await withPeer(120_000, async (peer, pipe) => {
      const jobs = Array.from({ length: 50 }, () => job('credit-q'));
      const done: Settled[] = [];
      const all = fire(pipe, jobs, done);
      await waitFor('the sender link attached', async () => (await peer.state()).attached === 1, 30_000);
      assert.equal(done.length, 0, 'no publish is confirmed without credit');
      await peer.grant(3);
      await waitFor('3 publishes confirmed', () => done.length === 3, 30_000);
      assert.deepEqual((await peer.state()).received, jobs.slice(0, 3).map((j) => j.id), 'the first three, once each, nothing beyond the credit');
      assert.deepEqual(done.map((d) => d.ok), [true, true, true]);
      await peer.grant(100);
      await withTimeout(Promise.all(all), 60_000, 'every publish to settle');
      assert.deepEqual(done.filter((d) => !d.ok).map((d) => String(d.err)), []);
      assert.deepEqual((await peer.state()).received, jobs.map((j) => j.id), 'every job once, in the order published');
    });
    assert.deepEqual(warnings, [], 'no Node warning while 50 publishes wait for credit');
  } finally {
    process.off('warning', onWarning);
  }
});

test('amqp1: a publish that gets no link credit within its wait fails naming the cause, and is never sent', { timeout: 120_000 }, async () => {
  await withPeer(3000, async (peer, pipe) => {
    const first: Settled[] = [];
    const opening = fire(pipe, [job('credit-q')], first);
    await waitFor('the sender link attached', async () => (await peer.state()).attached === 1, 30_000);
    const late: Settled[] = [];
    const jobs = Array.from({ length: 5 }, () => job('credit-q'));
    await withTimeout(Promise.all([...opening, ...fire(pipe, jobs, late)]), 60_000, 'the publishes to give up');
    for (const d of [...first, ...late]) {
      assert.equal(d.ok, false);
      assert.ok(d.err instanceof JobrunnerError && d.err.code === 'E_PUBLISH', String(d.err));
      assert.match((d.err as Error).message, /^no link credit to publish to credit-q within 3000 ms: /);
    }
    for (const d of late) assert.match((d.err as Error).message, /the broker gives no link credit/);
    // credit now: what gave up stays unsent, a new publish goes at once
    await peer.grant(10);
    const next = job('credit-q');
    await withTimeout(pipe.publish(next), 30_000, 'a publish with credit');
    assert.deepEqual((await peer.state()).received, [next.id], 'only the publish made after the credit came');
  });
});

test('amqp1: publishes waiting for credit fail at once as unsent when the connection is lost', { timeout: 120_000 }, async () => {
  await withPeer(120_000, async (peer, pipe) => {
    const done: Settled[] = [];
    const all = fire(pipe, Array.from({ length: 20 }, () => job('credit-q')), done);
    await waitFor('the sender link attached', async () => (await peer.state()).attached === 1, 30_000);
    await peer.close();
    await withTimeout(Promise.all(all), 60_000, 'the waiting publishes to fail (well before their 120 s wait)');
    assert.equal(done.length, 20);
    for (const d of done) {
      assert.equal(d.ok, false);
      assert.match(String((d.err as Error).message), /connection was lost before the publish was sent/);
    }
  });
});
