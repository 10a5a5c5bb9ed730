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

test('case 12: client mistakes on HTTP are 400 with a code, never 5xx', T, async () => {
  const d = await startDaemon(memoryYaml(), { level: 'info' });
  try {
    await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
    const bad: Array<[string, string, unknown]> = [
      ['bad percent-encoding in the name', '/pipelines/%E0%A4%A/pause', undefined],
      ['priority 1e20', '/pipelines/work/jobs', { job: 'T', payload: {}, priority: 1e20 }],
      ['delay 1e12', '/pipelines/work/jobs', { job: 'T', payload: {}, delay: 1e12 }],
      ['an id of 300 characters', '/pipelines/work/jobs', { job: 'T', payload: {}, id: 'i'.repeat(300) }],
      ['headers of 200 KB', '/pipelines/work/jobs', { job: 'T', payload: {}, headers: { big: 'h'.repeat(200_000) } }],
    ];
    for (const [what, path, body] of bad) {
      const r = await httpJson('POST', d.url + path, body);
      assert.equal(r.status, 400, `${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      assert.equal(r.body.code, 'E_USAGE', what);
    }
    assert.equal((await httpJson('POST', `${d.url}/pipelines/work/jobs`, { job: 'T', payload: { action: 'ack' }, id: 'i'.repeat(255), priority: 2 ** 53 - 1, delay: 0 })).status, 202, 'the limits themselves are fine');
  } finally {
    await d.stop();
  }
});

for (const [form, command] of [
  ['an argv list', JSON.stringify(['/nonexistent/jobrunner-worker-typo'])],
  ['a shell string', JSON.stringify('jobrunner-worker-typo-xyz --serve')],
] as const) {
  test(`case 13: a worker command that does not exist (${form}): /health 503 and /pipelines carry the worker error and the crash-loop count`, T, async () => {
    const yaml = [
      'version: "3"',
      `server: { command: ${command} }`,
      'http: { address: "127.0.0.1:0" }',
      'jobs:',
      '  consume: [work]',
      '  pool: { num_workers: 1, destroy_timeout: 2s }',
      '  pipelines:',
      '    work: { driver: memory }',
      '',
    ].join('\n');
    let d: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      d = await startDaemon(yaml, { level: 'info' });
    } catch (err) {
      // refusing to start with a clear error is an answer too
      assert.match(String(err), /E_WORKER_SPAWN|cannot start worker/);
      return;
    }
    const daemon = d;
    try {
      const h = await waitFor('/health 503 with the worker error', async () => {
        const r = await httpJson('GET', `${daemon.url}/health`);
        return r.status === 503 && typeof r.body.pipelines.work.error === 'string' && r.body.pipelines.work.crash_loop >= 3 ? r : undefined;
      }, 30_000);
      assert.match(h.body.pipelines.work.error, /E_WORKER_(SPAWN|CRASH)/);
      const rows = (await httpJson('GET', `${daemon.url}/pipelines`)).body as Array<{ pipeline: string; error: string | null }>;
      assert.match(String(rows.find((r) => r.pipeline === 'work')?.error), /E_WORKER_(SPAWN|CRASH)/, 'status shows the worker error');
    } finally {
      await daemon.stop();
    }
  });
}
