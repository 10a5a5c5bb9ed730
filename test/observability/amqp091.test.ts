// /metrics after a run on amqp091 against RabbitMQ (3.10 and 4.0): jobs_total by outcome, the duration
// histogram, published_total, broker_connected and queue_ready_messages equal what was processed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { PipelineConfig, RetryConfig } from '../../src/config/types.js';
import { OBS_WORKER, amqp091Options, brokerUrls, config, http, metric, pool, runDaemon, scrape, waitFor } from './support.js';

const brokers = brokerUrls('AMQP091_URLS');
const NO_DELAY_RETRY: RetryConfig = { maxAttempts: 2, backoff: { initialMs: 0, maxMs: 0, multiplier: 2, jitter: 0 } };

function amqpPipeline(name: string, queue: string, out: string, extra: Partial<PipelineConfig> = {}): PipelineConfig {
  return { name, driver: 'amqp091', command: [process.execPath, OBS_WORKER], env: { OBS_OUT: out }, pool: pool({ numWorkers: 2 }), consume: true, requeueOnFail: false, redialTimeoutMs: 60_000, options: amqp091Options(queue), ...extra } as PipelineConfig;
}

for (const url of 'urls' in brokers ? brokers.urls : ['(none)']) {
  test(`amqp091 on ${url}: jobs_total by outcome equals what was processed`, { skip: 'skip' in brokers ? brokers.skip : false }, async () => {
    const queue = `jobrunner-test-obs-${randomUUID()}`;
    const run = await runDaemon((out) => config([amqpPipeline('work', queue, out, { retry: NO_DELAY_RETRY })], { connections: { amqp: { urls: [url] } } }));
    try {
      await waitFor('ready', async () => (await http('GET', `${run.url}/ready`)).status === 200);
      const push = async (what: string, n: number): Promise<void> => {
        for (let i = 0; i < n; i++) assert.equal((await http('POST', `${run.url}/pipelines/work/jobs`, { job: 'T', payload: { do: what } })).status, 202);
      };
      await push('ack', 4);
      await push('fail', 2); // retry, then dead_letter
      await push('dead', 1);
      await push('requeue-once', 2); // requeue, then ack
      const settled = 4 + 2 * 2 + 1 + 2 * 2;
      const s = await waitFor('every job settled', async () => {
        const x = await scrape(run.url);
        return metric(x, 'jobrunner_jobs_total') >= settled && metric(x, 'jobrunner_jobs_in_flight') === 0 ? x : undefined;
      });
      const jobs = (outcome: string): number => metric(s, 'jobrunner_jobs_total', { pipeline: 'work', outcome });
      assert.equal(jobs('ack'), 6);
      assert.equal(jobs('retry'), 2);
      assert.equal(jobs('dead_letter'), 3);
      assert.equal(jobs('requeue'), 2);
      assert.equal(metric(s, 'jobrunner_jobs_total'), settled);
      assert.equal(metric(s, 'jobrunner_job_duration_seconds_count', { pipeline: 'work' }), settled);
      assert.equal(metric(s, 'jobrunner_published_total', { pipeline: 'work', outcome: 'ok' }), 9 + 2 + 2);
      assert.equal(metric(s, 'jobrunner_broker_connected', { connection: 'amqp091' }), 1);
      assert.equal(metric(s, 'jobrunner_queue_ready_messages', { pipeline: 'work' }), 0);
      assert.equal(run.received().length, settled);
    } finally {
      await run.stop();
    }
  });
}
