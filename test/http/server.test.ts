// The HTTP API (SPEC §7) on an in-process daemon with memory pipelines: /health, /ready while running,
// paused and stopping, /pipelines, pause/resume, push, the bearer token, and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { config, http, memoryPipeline, runDaemon, scrape, metric, waitFor } from '../observability/support.js';

test('/ready is 200 when consuming, 503 while paused, 200 after resume; /health stays 200', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'a', pool: { numWorkers: 2 } }, out), memoryPipeline({ name: 'b', consume: false }, out)]));
  try {
    await waitFor('ready', async () => (await http('GET', `${run.url}/ready`)).status === 200);
    const ready = await http('GET', `${run.url}/ready`);
    assert.deepEqual(ready.body, { status: 'ready', pipelines: { a: { healthy: true, connected: true, consuming: true, workers: 2 } } });
    const health = await http('GET', `${run.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');

    assert.deepEqual((await http('POST', `${run.url}/pipelines/a/pause`)).body, { pipeline: 'a', consuming: false });
    const paused = await http('GET', `${run.url}/ready`);
    assert.equal(paused.status, 503);
    assert.equal(paused.body.pipelines.a.consuming, false);
    assert.equal((await http('GET', `${run.url}/health`)).status, 200, 'a paused pipeline is healthy');

    // pushed while paused: waits in the queue, then runs after resume
    assert.equal((await http('POST', `${run.url}/pipelines/a/jobs`, { job: 'T', payload: { do: 'ack' } })).status, 202);
    const rows = (await http('GET', `${run.url}/pipelines`)).body as Array<Record<string, unknown>>;
    assert.deepEqual(rows[0], { pipeline: 'a', driver: 'memory', queue: 'a', consuming: false, ready: 1, active: 0, delayed: 0, reserved: 0, workers: 2, priority: 0, error: null });
    assert.equal(rows[1]?.['pipeline'], 'b');
    assert.equal(rows[1]?.['workers'], 0);

    assert.deepEqual((await http('POST', `${run.url}/pipelines/a/resume`)).body, { pipeline: 'a', consuming: true });
    assert.equal((await http('GET', `${run.url}/ready`)).status, 200);
    await waitFor('the job ran', () => run.received().length === 1);
    const s = await waitFor('acked', async () => {
      const x = await scrape(run.url);
      return metric(x, 'jobrunner_jobs_total', { pipeline: 'a', outcome: 'ack' }) === 1 ? x : undefined;
    });
    assert.equal(metric(s, 'jobrunner_jobs_total'), 1);
  } finally {
    await run.stop();
  }
});

test('/ready and /health are 503 during shutdown while a job is still in flight', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'a', pool: { destroyTimeoutMs: 500 } }, out)]));
  try {
    assert.equal((await http('POST', `${run.url}/pipelines/a/jobs`, { job: 'T', payload: { do: 'slow', ms: 60_000 } })).status, 202);
    await waitFor('the job is on a worker', () => run.received().length === 1);
    assert.equal((await http('GET', `${run.url}/ready`)).status, 200);
    const stopping = run.daemon.stop();
    const ready = await http('GET', `${run.url}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'not ready');
    assert.equal((await http('GET', `${run.url}/health`)).status, 503);
    assert.equal((await http('POST', `${run.url}/pipelines/a/jobs`, { job: 'T' })).status, 503, 'no pushes while stopping');
    run.daemon.hurry();
    await stopping;
  } finally {
    await run.stop();
  }
});

test('a token guards every mutating endpoint; errors are JSON with a code', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'a' }, out)], { http: { address: '127.0.0.1:0', token: 's3cret' } }));
  try {
    for (const path of ['/pipelines/a/pause', '/pipelines/a/resume', '/pipelines/a/jobs']) {
      const res = await http('POST', `${run.url}${path}`, { job: 'T' });
      assert.equal(res.status, 401, path);
      assert.equal(res.body.code, 'E_HTTP');
      assert.equal((await http('POST', `${run.url}${path}`, { job: 'T' }, { authorization: 'Bearer wrong' })).status, 401, path);
    }
    const auth = { authorization: 'Bearer s3cret' };
    assert.equal((await http('POST', `${run.url}/pipelines/a/jobs`, { job: 'T', payload: { do: 'ack' } }, auth)).status, 202);
    // reads need no token
    assert.equal((await http('GET', `${run.url}/pipelines`)).status, 200);
    assert.equal((await http('GET', `${run.url}/metrics`)).status, 200);
    const unknown = await http('POST', `${run.url}/pipelines/nope/pause`, undefined, auth);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'E_PIPELINE_UNKNOWN');
    const bad = await http('POST', `${run.url}/pipelines/a/jobs`, { payload: 1 }, auth);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /`job` must be a non-empty string/);
    assert.equal((await http('GET', `${run.url}/nope`)).status, 404);
    assert.equal((await http('DELETE', `${run.url}/pipelines`)).status, 405);
    await waitFor('the pushed job ran', () => run.received().length === 1);
  } finally {
    await run.stop();
  }
});
