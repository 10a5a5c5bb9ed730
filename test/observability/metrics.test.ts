// /metrics after a run on the memory driver: every SPEC §7 metric is present, and jobs_total by outcome,
// the duration histogram, published_total and worker restarts equal what was processed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RETRY, config, http, memoryPipeline, metric, runDaemon, scrape, waitFor } from './support.js';

const SPEC_METRICS = [
  'jobrunner_jobs_total',
  'jobrunner_job_duration_seconds_count',
  'jobrunner_jobs_in_flight',
  'jobrunner_workers',
  'jobrunner_worker_restarts_total',
  'jobrunner_broker_connected',
  'jobrunner_published_total',
  'jobrunner_queue_ready_messages',
];

test('jobs_total by outcome, durations, published_total and restarts equal what was processed', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'work', retry: FAST_RETRY, pool: { numWorkers: 2 } }, out)]));
  try {
    const push = async (what: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const res = await http('POST', `${run.url}/pipelines/work/jobs`, { job: 'T', payload: { do: what } });
        assert.equal(res.status, 202, JSON.stringify(res.body));
      }
    };
    await push('ack', 5);
    await push('fail', 3); // attempt 1: retry, attempt 2: dead_letter (max_attempts 2)
    await push('dead', 2); // dead_letter at once
    await push('requeue-once', 2); // requeue, then ack
    await push('crash', 1); // worker crash: retry, crash again: dead_letter; two restarts

    // 5 + 3*2 + 2 + 2*2 + 1*2 settlements
    const settled = 19;
    const samples = await waitFor('every job settled', async () => {
      const s = await scrape(run.url);
      return metric(s, 'jobrunner_jobs_total') >= settled && metric(s, 'jobrunner_jobs_in_flight') === 0 ? s : undefined;
    });
    const jobs = (outcome: string): number => metric(samples, 'jobrunner_jobs_total', { pipeline: 'work', outcome });
    assert.equal(jobs('ack'), 7);
    assert.equal(jobs('retry'), 4);
    assert.equal(jobs('dead_letter'), 6);
    assert.equal(jobs('requeue'), 2);
    assert.equal(metric(samples, 'jobrunner_jobs_total'), settled);
    assert.equal(metric(samples, 'jobrunner_job_duration_seconds_count', { pipeline: 'work' }), settled);
    assert.equal(metric(samples, 'jobrunner_jobs_in_flight', { pipeline: 'work' }), 0);
    // 13 pushes + 4 retries + 2 requeues, all confirmed
    assert.equal(metric(samples, 'jobrunner_published_total', { pipeline: 'work', outcome: 'ok' }), 19);
    assert.equal(metric(samples, 'jobrunner_published_total', { outcome: 'error' }), 0);
    assert.equal(metric(samples, 'jobrunner_worker_restarts_total', { pipeline: 'work', reason: 'crash' }), 2);
    assert.equal(metric(samples, 'jobrunner_broker_connected', { connection: 'memory' }), 1);
    assert.equal(metric(samples, 'jobrunner_queue_ready_messages', { pipeline: 'work' }), 0);
    for (const name of SPEC_METRICS) assert.ok(samples.some((s) => s.name === name), `${name} is exported`);
    // the two replacement workers are up again
    const after = await waitFor('workers back', async () => {
      const s = await scrape(run.url);
      return metric(s, 'jobrunner_workers', { pipeline: 'work', state: 'ready' }) === 2 ? s : undefined;
    });
    assert.equal(metric(after, 'jobrunner_workers', { pipeline: 'work', state: 'busy' }), 0);
    // what the workers saw: 19 deliveries in all
    assert.equal(run.received().length, settled);
  } finally {
    await run.stop();
  }
});

test('dead letters to a dead-letter pipeline count once in published_total; jobs_in_flight counts held jobs', async () => {
  const run = await runDaemon((out) =>
    config([memoryPipeline({ name: 'main', deadLetter: 'graveyard', pool: { numWorkers: 2, destroyTimeoutMs: 500 } }, out), memoryPipeline({ name: 'graveyard', consume: false }, out)]),
  );
  try {
    for (let i = 0; i < 3; i++) assert.equal((await http('POST', `${run.url}/pipelines/main/jobs`, { job: 'T', payload: { do: 'dead' } })).status, 202);
    for (let i = 0; i < 2; i++) assert.equal((await http('POST', `${run.url}/pipelines/main/jobs`, { job: 'T', payload: { do: 'slow', ms: 60_000 } })).status, 202);
    const s = await waitFor('dead letters and two jobs in flight', async () => {
      const x = await scrape(run.url);
      return metric(x, 'jobrunner_jobs_total', { outcome: 'dead_letter' }) === 3 && metric(x, 'jobrunner_jobs_in_flight', { pipeline: 'main' }) === 2 ? x : undefined;
    });
    assert.equal(metric(s, 'jobrunner_published_total', { pipeline: 'graveyard', outcome: 'ok' }), 3);
    assert.equal(metric(s, 'jobrunner_published_total', { pipeline: 'main', outcome: 'ok' }), 5);
    assert.equal(metric(s, 'jobrunner_queue_ready_messages', { pipeline: 'graveyard' }), 3);
    assert.equal(metric(s, 'jobrunner_workers', { pipeline: 'main', state: 'busy' }), 2);
    const rows = (await http('GET', `${run.url}/pipelines`)).body as Array<{ pipeline: string; active: number; ready: number; consuming: boolean }>;
    assert.deepEqual(
      rows.map((r) => [r.pipeline, r.consuming, r.active, r.ready]),
      [
        ['main', true, 2, 0],
        ['graveyard', false, 0, 3],
      ],
    );
  } finally {
    run.daemon.hurry();
    await run.stop();
  }
});
