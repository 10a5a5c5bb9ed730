// Logs (issue 5): one line per job at debug, one per failure at warn with job id, attempt and reason,
// worker starts and exits with their reason at info (a crash at warn).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RETRY, config, http, memoryPipeline, metric, runDaemon, scrape, waitFor } from './support.js';

test('job, failure and worker log lines carry what an operator needs', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'work', retry: FAST_RETRY }, out)]));
  try {
    const push = async (id: string, what: string): Promise<void> => {
      assert.equal((await http('POST', `${run.url}/pipelines/work/jobs`, { job: 'T', id, payload: { do: what } })).status, 202);
    };
    await push('ok-1', 'ack');
    await push('ok-2', 'ack');
    await push('bad-1', 'fail');
    await push('boom-1', 'crash');
    await waitFor('all settled', async () => metric(await scrape(run.url), 'jobrunner_jobs_total') === 2 + 2 + 2);
    await waitFor('the crashed worker replaced', () => run.logs.filter((l) => l.msg === 'worker started').length === 3);

    const done = run.logs.filter((l) => l.msg === 'job done');
    assert.deepEqual(done.map((l) => [l.level, l['job_id']]).sort(), [
      ['debug', 'ok-1'],
      ['debug', 'ok-2'],
    ]);
    const failed = run.logs.filter((l) => l.level === 'warn' && l.msg === 'job failed');
    assert.deepEqual(failed.map((l) => [l['job_id'], l['attempt']]).sort(), [
      ['bad-1', 1],
      ['bad-1', 2],
      ['boom-1', 1],
      ['boom-1', 2],
    ]);
    for (const l of failed) assert.match(String(l['reason']), l['job_id'] === 'bad-1' ? /^failed by fixture$/ : /^E_WORKER_CRASH: worker \d+ exited/);
    const dead = run.logs.filter((l) => l.msg === "job rejected: dead-lettered by the queue's DLX if it has one, otherwise dropped by the broker");
    assert.deepEqual(dead.map((l) => [l.level, l['job_id'], l['attempt']]).sort(), [
      ['warn', 'bad-1', 2],
      ['warn', 'boom-1', 2],
    ]);
    const starts = run.logs.filter((l) => l.msg === 'worker started');
    for (const l of starts) assert.equal(l.level, 'info');
    assert.ok(starts.every((l) => typeof l['pid'] === 'number'));
    const exits = run.logs.filter((l) => l.msg === 'worker exited');
    assert.deepEqual(exits.map((l) => [l.level, l['reason']]), [
      ['warn', 'crash'],
      ['warn', 'crash'],
    ]);
  } finally {
    await run.stop();
  }
  const exits = run.logs.filter((l) => l.msg === 'worker exited' && l['reason'] === 'stop');
  assert.equal(exits.length, 1);
  assert.equal(exits[0]?.level, 'info');
});
