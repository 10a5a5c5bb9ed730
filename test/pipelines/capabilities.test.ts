// Settlement and the start-up checks decide by a broker's capabilities, never its name: a broker with
// its own retry-after gets retryLater instead of re-publish + ack; a broker without dead-lettering needs
// dead_letter.pipeline for a retry policy; a retry policy with delays the broker cannot take is refused.
// Fake broker and deliveries: what is checked is which driver call settle makes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PipelineConfig, RetryConfig } from '../../src/config/types.js';
import type { BrokerPipeline, Capabilities, Delivery, Headers, OutgoingJob } from '../../src/drivers/driver.js';
import { Metrics } from '../../src/observability/metrics.js';
import { checkCapabilities } from '../../src/pipelines/capability-checks.js';
import { settle, type SettleContext } from '../../src/pipelines/settle.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { RETRY, broker, delivery, pipelineConfig, silent } from '../helpers/fake-settle.js';

function ctx(config: PipelineConfig, b: BrokerPipeline, published: string[]): SettleContext {
  return {
    config,
    broker: b,
    publishTo: async (name: string, job: OutgoingJob) => void published.push(`${name} delay=${job.delayMs} attempt=${job.attempt ?? '-'}`),
    logger: silent,
    metrics: new Metrics({ defaults: false }).forPipeline('p'),
  };
}

test('a broker with retryLater: a failed job is retried by the broker itself, nothing re-published', async () => {
  const calls: string[] = [];
  const published: string[] = [];
  const b = broker({ retryLater: { maxDelayMs: 60_000, headers: false }, nativeDeadLetter: false });
  await settle(ctx(pipelineConfig({ retry: RETRY, deadLetter: { pipeline: 'dead' } }), b, published), delivery(calls, true), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['retryLater(1000)']);
  assert.deepEqual(published, []);
});

test('retryLater is not used past its maxDelayMs, nor with headers it cannot carry: re-publish, then ack', async () => {
  const b = broker({ retryLater: { maxDelayMs: 500, headers: false } });
  let calls: string[] = [];
  let published: string[] = [];
  await settle(ctx(pipelineConfig({ retry: RETRY }), b, published), delivery(calls, true), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual([calls, published], [['ack'], ['p delay=1000 attempt=2']]);
  const wide = broker({ retryLater: { maxDelayMs: 60_000, headers: false } });
  calls = [];
  published = [];
  await settle(ctx(pipelineConfig(), wide, published), delivery(calls, true), { kind: 'nack', error: 'again', requeue: true, delayMs: 200, headers: { k: ['v'] } }, []);
  assert.deepEqual([calls, published], [['ack'], ['p delay=200 attempt=2']]);
  const withHeaders = broker({ retryLater: { maxDelayMs: 60_000, headers: true } });
  calls = [];
  published = [];
  await settle(ctx(pipelineConfig(), withHeaders, published), delivery(calls, true), { kind: 'nack', error: 'again', requeue: true, delayMs: 200, headers: { k: ['v'] } }, []);
  assert.deepEqual([calls, published], [['retryLater(200, {"k":["v"]})'], []]);
});

test('a broker without retryLater: confirmed re-publish, then ack (unchanged)', async () => {
  const calls: string[] = [];
  const published: string[] = [];
  await settle(ctx(pipelineConfig({ retry: RETRY }), broker({}), published), delivery(calls, false), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual([calls, published], [['ack'], ['p delay=1000 attempt=2']]);
});

test('requeue_on_fail is the pipeline\'s, whatever the driver; without it a failed job is dead-lettered by the broker', async () => {
  let calls: string[] = [];
  await settle(ctx(pipelineConfig({ requeueOnFail: true }), broker({}), []), delivery(calls, false), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['reject(true)']);
  calls = [];
  await settle(ctx(pipelineConfig(), broker({}), []), delivery(calls, false), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['reject(false)']);
});

async function code(config: PipelineConfig, b: BrokerPipeline): Promise<string> {
  try {
    await checkCapabilities(config, b, silent);
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof JobrunnerError);
    return `${err.code}: ${err.message}`;
  }
}

test('start-up: no broker dead-lettering and a retry block need dead_letter.pipeline', async () => {
  const b = broker({ nativeDeadLetter: false, retryLater: { maxDelayMs: 60_000, headers: false } });
  assert.match(await code(pipelineConfig({ retry: RETRY }), b), /^E_CONFIG_REF: pipeline p: its broker does not dead-letter messages by itself, so a pipeline with a `retry` block needs `dead_letter.pipeline`/);
  assert.equal(await code(pipelineConfig({ retry: RETRY, deadLetter: { pipeline: 'dead' } }), b), 'ok');
  // RoadRunner's semantics without a retry block: allowed, said once
  assert.equal(await code(pipelineConfig(), b), 'ok');
});

test('start-up: a retry policy with delays the broker cannot take is E_DELAY_UNSUPPORTED', async () => {
  const none = broker({ delays: 'none', delayAdvice: { broker: 'this test broker', fix: 'use another' } });
  assert.equal(await code(pipelineConfig({ retry: RETRY }), none), 'E_DELAY_UNSUPPORTED: pipeline p: its retry policy delays messages, and this test broker cannot delay them; use another, or remove the backoff (retry.backoff.initial: 0)');
  assert.equal(await code(pipelineConfig({ retry: { ...RETRY, backoff: { ...RETRY.backoff, initialMs: 0 } } }), none), 'ok', 'no backoff: no delays');
  assert.equal(await code(pipelineConfig(), none), 'ok', 'no retry block: nothing to check');
  // the broker's own retry-after covers every backoff delay
  assert.equal(await code(pipelineConfig({ retry: RETRY }), broker({ delays: 'none', retryLater: { maxDelayMs: 4000, headers: false } })), 'ok');
  assert.match(await code(pipelineConfig({ retry: RETRY }), broker({ delays: 'none', retryLater: { maxDelayMs: 3999, headers: false } })), /^E_DELAY_UNSUPPORTED/);
  // 'existing': each delay the backoff uses is checked, jitter refused
  const asked: number[] = [];
  const existing = broker({ delays: 'existing' }, async (ms) => {
    asked.push(ms);
    if (ms === 2000) throw new JobrunnerError('E_DELAY_UNSUPPORTED', 'the delay queue d.2000 is missing');
  });
  assert.match(await code(pipelineConfig({ retry: { ...RETRY, backoff: { ...RETRY.backoff, jitter: 0.1 } } }), existing), /jitter makes their names unpredictable/);
  assert.equal(await code(pipelineConfig({ retry: RETRY }), existing), 'E_DELAY_UNSUPPORTED: pipeline p: its retry policy needs the delay queue d.2000 is missing, or remove the backoff (retry.backoff.initial: 0)');
  assert.deepEqual(asked, [1000, 2000]);
});
