// Settlement of a delivery whose connection is gone (Delivery.live() === false): the broker hands the
// message out again by itself, so settle() must publish no retry or dead-letter copy of it (that copy
// plus the redelivery made duplicates in the connection-cut fault test). The live case is checked too,
// so the test fails if settle() stops publishing altogether.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigText } from '../../src/config/index.js';
import type { Delivery, OutgoingJob } from '../../src/drivers/driver.js';
import type { JobOutcome } from '../../src/pool/types.js';
import { silentLogger } from '../../src/observability/logger.js';
import { settle } from '../../src/pipelines/settle.js';

const YAML = `
version: "3"
server: { command: "node worker.js" }
amqp: { addr: "amqp://guest:guest@127.0.0.1:5672" }
jobs:
  pipelines:
    work:
      driver: amqp091
      config: { queue: work }
      retry: { max_attempts: 3, backoff: { initial: 1s } }
      dead_letter: { pipeline: dead }
    dead:
      driver: amqp091
      config: { queue: dead }
  consume: [work]
`;

function pipelineConfig(name: string) {
  const r = checkConfigText('stale.yaml', YAML, {});
  assert.deepEqual(r.problems, []);
  const p = r.config!.pipelines.find((x) => x.name === name);
  assert.ok(p);
  return p;
}

interface Calls {
  published: { to: string; job: OutgoingJob }[];
  settled: string[];
}

function harness(live: boolean, attempt: number) {
  const calls: Calls = { published: [], settled: [] };
  const delivery: Delivery = {
    id: 'job-1',
    job: 'demo',
    body: Buffer.from('{}'),
    headers: {},
    attempt,
    redelivered: false,
    queue: 'work',
    ack: async () => void calls.settled.push('ack'),
    reject: async (requeue) => void calls.settled.push(requeue ? 'requeue' : 'reject'),
    live: () => live,
  };
  const counted: string[] = [];
  const ctx = {
    config: pipelineConfig('work'),
    broker: undefined as never,
    publishTo: async (to: string, job: OutgoingJob) => void calls.published.push({ to, job }),
    logger: silentLogger(),
    metrics: { inFlight: { inc() {}, dec() {} }, duration: { observe() {} }, count: (o: string) => void counted.push(o) },
  };
  return { calls, delivery, ctx, counted };
}

const failed: JobOutcome = { kind: 'failed', code: 'E_WORKER_CRASH', error: 'worker exited' };

for (const [label, attempt, to] of [
  ['retry', 1, 'work'],
  ['dead-letter', 3, 'dead'],
] as const) {
  test(`a failed job whose connection is gone gets no ${label} copy and is not settled; a live one does`, async () => {
    const gone = harness(false, attempt);
    await settle(gone.ctx, gone.delivery, failed, []);
    assert.deepEqual(gone.calls, { published: [], settled: [] });
    assert.deepEqual(gone.counted, []);

    const live = harness(true, attempt);
    await settle(live.ctx, live.delivery, failed, []);
    assert.deepEqual(live.calls.published.map((p) => [p.to, p.job.id]), [[to, 'job-1']]);
    assert.deepEqual(live.calls.settled, ['ack']);
  });
}

test('a done job whose follow-up failed after its connection went is not retried (the broker redelivers it)', async () => {
  const gone = harness(false, 1);
  const followUp = Promise.reject(new Error('connection closed'));
  followUp.catch(() => undefined);
  await settle(gone.ctx, gone.delivery, { kind: 'ack' }, [followUp]);
  assert.deepEqual(gone.calls, { published: [], settled: [] });

  const live = harness(true, 1);
  const failedFollowUp = Promise.reject(new Error('unroutable'));
  failedFollowUp.catch(() => undefined);
  await settle(live.ctx, live.delivery, { kind: 'ack' }, [failedFollowUp]);
  assert.equal(live.calls.published.length, 1, 'a live job whose follow-up failed goes to its retry');
  assert.deepEqual(live.calls.settled, ['ack']);
});
