// Hardening (hostile and careless input found by an outside test), the cases that need no broker: a worker's
// long stderr lines (case 4), HTTP client mistakes (case 12), /health and status carrying worker errors
// (case 13). Each test names its case.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURE_WORKERS, httpJson, metricValue, startDaemon, waitFor } from '../helpers/daemon.js';

const SCRIPTED = join(FIXTURE_WORKERS, 'scripted.mjs');
const T = { timeout: 60_000 };

function memoryYaml(extra = ''): string {
  return [
    'version: "3"',
    `server: { command: ${JSON.stringify([process.execPath, SCRIPTED])} }`,
    'http: { address: "127.0.0.1:0" }',
    'jobs:',
    '  consume: [work]',
    '  pool: { num_workers: 1, destroy_timeout: 2s }',
    '  pipelines:',
    '    work: { driver: memory }',
    extra,
  ].join('\n');
}

test('case 4: a long stderr line is logged cut to a bounded length with a note; the job still runs', T, async () => {
  const d = await startDaemon(memoryYaml(), { level: 'info' });
  try {
    await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
    const hex = 'ab12cd34ef56'.repeat(5_200); // 62 KB of letters and digits, the shape that was slow
    const step = { action: 'stderr', text: hex, then: { action: 'stderr', text: hex, then: { action: 'stderr', text: hex, then: 'ack' } } };
    const r = await httpJson('POST', `${d.url}/pipelines/work/jobs`, { job: 'T', payload: step });
    assert.equal(r.status, 202);
    await waitFor('three stderr lines logged', () => d.logs.filter((l) => l['stream'] === 'stderr').length >= 3, 20_000);
    await waitFor('the job acked', async () => metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline: 'work', outcome: 'ack' }) === 1, 20_000);
    for (const l of d.logs.filter((x) => x['stream'] === 'stderr')) {
      assert.ok(l.msg.length <= 8 * 1024 + 100, `a stderr line logged with ${l.msg.length} characters`);
      assert.match(l.msg, /\[cut: the line had 62400 characters\]$/);
    }
    const h = await httpJson('GET', `${d.url}/health`);
    assert.equal(h.status, 200);
  } finally {
    await d.stop();
  }
});
