// The built CLI (`node dist/cli/main.js serve`) on a memory pipeline with each reference worker in turn:
// jobs pushed through the HTTP API and through `jobrunner push` are processed, a delay_retry job comes back once (the worker's stderr line is
// in the daemon's log), a follow-up is published and processed, the ack count in /metrics matches what
// went in, GET /pipelines shows the pipeline, and SIGTERM ends the daemon with exit 0.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { languages, repoRoot } from './worker-harness.js';
import { runCli, startServe, type Serve } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { httpCall } from '../helpers/http.js';

const inCi = process.env.CI === 'true';
const cli = join(repoRoot, 'dist/cli/main.js');
const WAIT_MS = 15_000;

/** waitFor, with what the daemon printed in the error */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, detail: () => string): Promise<NonNullable<T>> {
  return waitFor(what, probe, WAIT_MS, 100).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; ${detail()}`);
  });
}

for (const lang of languages) {
  const missing = lang.missing() ?? (existsSync(cli) ? undefined : 'dist/cli/main.js missing: run npm run build');
  const required = inCi && (lang.requiredInCi || !existsSync(cli));
  const skip = missing !== undefined && !required ? missing : false;

  describe(`jobrunner serve with the ${lang.name} example worker`, { skip, timeout: 60_000 }, () => {
    let dir = '';
    let cleanup: (() => void) | undefined;
    let daemon: Serve | undefined;
    const log = (): string => daemon?.output() ?? '';
    let base = '';
    let configPath = '';

    before(async () => {
      if (missing !== undefined) throw new Error(`${missing}, and CI=true requires it`);
      cleanup = lang.prepare?.();
      dir = mkdtempSync(join(tmpdir(), `jobrunner-daemon-${lang.name}-`));
      configPath = join(dir, 'jobs.yaml');
      writeFileSync(
        configPath,
        [
          'version: "3"',
          // workers start in the config file's folder: the example's path is made absolute
          `server: { command: ${JSON.stringify(lang.argv().map((a) => (a.startsWith('examples/') ? join(repoRoot, a) : a)))} }`,
          'http: { address: "127.0.0.1:0" }',
          'logs: { level: info }',
          'jobs:',
          '  consume: [work]',
          '  pool: { num_workers: 1, destroy_timeout: 10s }',
          '  pipelines:',
          '    work: { driver: memory, config: { prefetch: 10 } }',
          '',
        ].join('\n'),
      );
      daemon = await startServe(configPath);
      base = `http://${daemon.address}`;
      await until('/ready', async () => {
        if (daemon!.child.exitCode !== null) throw new Error(`daemon exited ${daemon!.child.exitCode}: ${log()}`);
        const r = await httpCall('GET', `${base}/ready`).catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      }, log);
    });

    after(() => {
      if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
      cleanup?.();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('processes pushed jobs and a follow-up, then exits 0 on SIGTERM', async () => {
      const push = async (job: string, payload: unknown): Promise<string> => {
        const r = await httpCall('POST', `${base}/pipelines/work/jobs`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ job, payload }) });
        const text = r.text;
        assert.ok(r.status === 202 || r.status === 200, `push answered ${r.status}: ${text}`);
        return (JSON.parse(text) as { id: string }).id;
      };
      const emailId = await push('SendEmail', { to: 'a@b.c' });
      const orderId = await push('PlaceOrder', { follow_up: { job: 'Receipt', payload: { order: 7 } } });
      const retryId = await push('Flaky', { delay_retry: 1 }); // nacked with requeue and a 1 s delay, then acked
      // the documented command line: for a memory pipeline it goes through the daemon's HTTP API
      // (--address: the daemon listens on a port of its own choosing, not the one in the file)
      const cliPush = await runCli(['push', '-c', configPath, 'work', 'Welcome', '{"user":42}', '--address', daemon!.address], { timeoutMs: WAIT_MS });
      assert.equal(cliPush.code, 0, `jobrunner push: ${cliPush.stderr}`);

      const count = (text: string, outcome: string): number =>
        Number(new RegExp(`^jobrunner_jobs_total\\{pipeline="work",outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      const metrics = await until('5 acks in /metrics', async () => {
        const { text } = await httpCall('GET', `${base}/metrics`);
        return count(text, 'ack') >= 5 ? text : undefined;
      }, log);
      assert.equal(count(metrics, 'ack'), 5, 'four pushed jobs and one follow-up, each acked once');
      assert.equal(count(metrics, 'requeue'), 1, 'the delay_retry job was requeued once');

      // the worker's stderr lines, as the daemon logs them (pino JSON, one `msg` each)
      const said = log().split('\n').flatMap((l) => {
        try {
          const msg = (JSON.parse(l) as { msg?: unknown }).msg;
          return typeof msg === 'string' && msg.startsWith('processed ') ? [msg] : [];
        } catch {
          return [];
        }
      });
      assert.equal(said.length, 5, said.join('\n'));
      assert.ok(said.includes(`processed SendEmail ${emailId} {"to":"a@b.c"}`), said.join('\n'));
      assert.ok(said.some((m) => m.startsWith(`processed PlaceOrder ${orderId} `)), said.join('\n'));
      assert.ok(said.some((m) => /^processed Receipt \S+ \{"order":7\}$/.test(m)), said.join('\n'));
      assert.ok(said.includes(`processed Flaky ${retryId} {"delay_retry":1}`), said.join('\n'));
      assert.ok(log().includes(`retrying Flaky ${retryId} in 1s`), log());
      assert.ok(said.some((m) => /^processed Welcome \S+ \{"user":42\}$/.test(m)), said.join('\n'));

      const pipelines = JSON.parse((await httpCall('GET', `${base}/pipelines`)).text) as Array<Record<string, unknown>>;
      const work = pipelines.find((p) => p.pipeline === 'work');
      assert.ok(work, JSON.stringify(pipelines));
      assert.equal(work.driver, 'memory');
      assert.equal(work.consuming, true);
      assert.equal(work.ready, 0);
      assert.equal(work.active, 0);

      assert.equal(await daemon!.stop(WAIT_MS), 0, `exit after SIGTERM; log: ${log()}`);
    });
  });
}
