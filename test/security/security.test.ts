// Security (issue 4 §8): the HTTP server binds loopback by default; with http.token every mutating
// endpoint needs it (reads do not); and no password, SAS key or token appears in anything the daemon or
// the CLI prints: `serve` failing to reach brokers with distinctive secrets in their URLs, `validate` on a
// broken file holding them, and `push` that cannot connect. Everything printed is grepped for them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { httpJson, startDaemon, waitFor } from '../helpers/daemon.js';
import { CLI } from '../helpers/faults.js';
import { runCli, startServe } from '../helpers/cli.js';
import { recordOutput, registerSecrets } from '../helpers/output-log.js';

const PASSWORD = 'Pw-amqp-9f3c1e77d2';
const SAS_KEY = 'SasKey+Zq81/x0Lm4Pw==';
const TOKEN = 'tok-http-4b7e22a1c9';
const SECRETS = [PASSWORD, SAS_KEY, encodeURIComponent(SAS_KEY), TOKEN];
registerSecrets(...SECRETS);
const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);

function assertNoSecret(what: string, text: string): void {
  recordOutput(text);
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what} prints a secret (${s.slice(0, 6)}…):\n${text.slice(0, 3000)}`);
}

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-security-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('the HTTP server binds loopback unless told otherwise', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'jobs.yaml');
    writeFileSync(file, 'version: "3"\nserver: { command: "true" }\njobs:\n  pipelines:\n    work: { driver: memory }\n');
    const config = loadConfig(file, {});
    assert.match(config.http.address, /^127\.0\.0\.1:\d+$/);
  });
  const d = await startDaemon('version: "3"\nserver: { command: "true" }\nhttp: { address: "127.0.0.1:0" }\njobs:\n  pipelines:\n    work: { driver: memory }\n');
  try {
    assert.match(d.daemon.httpAddress ?? '', /^127\.0\.0\.1:\d+$/);
  } finally {
    await d.stop();
  }
});

test('with http.token every mutating endpoint needs it; reads do not', { timeout: 30_000 }, async () => {
  const d = await startDaemon(
    [
      'version: "3"',
      `server: { command: ${JSON.stringify([process.execPath, join(process.cwd(), 'test/fixtures/workers/echo.mjs')])} }`,
      `http: { address: "127.0.0.1:0", token: "${TOKEN}" }`,
      'jobs:',
      '  consume: [work]',
      '  pool: { num_workers: 1 }',
      '  pipelines:',
      '    work: { driver: memory }',
      '',
    ].join('\n'),
  );
  try {
    await waitFor('ready', () => d.daemon.readiness().ok);
    const mutating: Array<[string, unknown]> = [
      ['/pipelines/work/pause', undefined],
      ['/pipelines/work/resume', undefined],
      ['/pipelines/work/jobs', { job: 'T', payload: { a: 1 } }],
    ];
    for (const [path, body] of mutating) {
      assert.equal((await httpJson('POST', d.url + path, body)).status, 401, `${path} without a token`);
      assert.equal((await httpJson('POST', d.url + path, body, 'wrong-token')).status, 401, `${path} with a wrong token`);
      assert.equal((await httpJson('POST', d.url + path, body, `${TOKEN}x`)).status, 401, `${path} with a longer token`);
    }
    assert.equal(d.daemon.readiness().pipelines['work']?.consuming, true, 'nothing was paused without the token');
    for (const [path, body] of mutating) {
      const r = await httpJson('POST', d.url + path, body, TOKEN);
      assert.ok(r.status >= 200 && r.status < 300, `${path} with the token: ${r.status}`);
    }
    for (const path of ['/health', '/ready', '/metrics', '/pipelines']) assert.equal((await httpJson('GET', d.url + path)).status, 200, path);
    assertNoSecret('daemon logs', JSON.stringify(d.logs));
  } finally {
    await d.stop();
  }
});

test('no password, SAS key or token in what serve, validate and push print', { timeout: 60_000, skip: cliMissing }, async () => {
  await withDir(async (dir) => {
    const amqpUrl = `amqp://jobuser:${PASSWORD}@127.0.0.1:1/`;
    const sbUrl = `amqps://RootManageSharedAccessKey:${encodeURIComponent(SAS_KEY)}@127.0.0.1:1/`;
    const good = [
      'version: "3"',
      `server: { command: ${JSON.stringify([process.execPath, join(process.cwd(), 'test/fixtures/workers/echo.mjs')])} }`,
      `amqp: { addr: ["${amqpUrl}", "amqp://jobuser:${PASSWORD}@127.0.0.1:2/"] }`,
      `amqp1: { addr: "${sbUrl}" }`,
      `http: { address: "127.0.0.1:0", token: "\${JR_TOKEN}" }`,
      'logs: { level: debug }',
      'jobs:',
      '  consume: [a, b]',
      '  pool: { num_workers: 1 }',
      '  pipelines:',
      '    a: { driver: amqp091, config: { queue: sec-a } }',
      '    b: { driver: amqp1, config: { queue: sec-b } }',
      '',
    ].join('\n');
    const file = join(dir, 'jobs.yaml');
    writeFileSync(file, good);
    const env = { JR_TOKEN: TOKEN };

    // push: cannot connect to the broker (it gives up after 30 s: started now, checked at the end)
    const pushed = new Promise<{ status: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'push', '-c', file, 'a', 'T', '{}'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      child.once('exit', (status) => {
        clearTimeout(timer);
        resolve({ status, out });
      });
    });

    // serve: both brokers unreachable; connection errors logged at error and debug level
    // the HTTP server on a port of its own choosing, read from its log line
    const serve = await startServe(file, { env });
    const port = serve.address.split(':')[1];
    try {
      await waitFor('connection errors logged', () => /E_BROKER_CONNECT/.test(serve.output()) && /amqp1|RootManage/i.test(serve.output()), 20_000);
      const status = await httpJson('GET', `http://127.0.0.1:${port}/pipelines`);
      assertNoSecret('GET /pipelines', JSON.stringify(status.body));
      const health = await httpJson('GET', `http://127.0.0.1:${port}/health`);
      assertNoSecret('GET /health', JSON.stringify(health.body));
      const push = await httpJson('POST', `http://127.0.0.1:${port}/pipelines/a/jobs`, { job: 'T', payload: {} }, TOKEN);
      assertNoSecret('POST /pipelines/a/jobs error', JSON.stringify(push.body));
      assert.notEqual(await serve.stop(20_000), 'killed', 'serve exits on SIGTERM');
    } finally {
      serve.child.kill('SIGKILL');
    }
    assert.match(serve.output(), /\*\*\*/, 'the URLs are logged redacted');
    assertNoSecret('serve output', serve.output());

    // validate: a broken file that holds the secrets
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, good.replace('logs: { level: debug }', `logs: { level: debug, colour: "${PASSWORD}" }`).replace(`amqp1: { addr: "${sbUrl}" }`, `amqp1: { addr: "${sbUrl}", container: 7 }`));
    const v = await runCli(['validate', '-c', broken], { env, timeoutMs: 20_000 });
    assert.equal(v.code, 2, v.stderr);
    assertNoSecret('validate output', v.stdout + v.stderr);
    const ok = await runCli(['validate', '-c', file], { env, timeoutMs: 20_000 });
    assert.equal(ok.code, 0, ok.stderr);
    assertNoSecret('validate output (valid file)', ok.stdout + ok.stderr);

    const p = await pushed;
    assert.equal(p.status, 1, p.out);
    assert.match(p.out, /E_BROKER_CONNECT/);
    assertNoSecret('push output', p.out);
  });
});
