// push and the control commands as an operator meets them: payloads are JSON when they parse and an error
// when they only look like JSON; a refused connection or a wrong password ends the push at once instead of
// after --timeout; status/pause read only the http part of the file; a wrong token says so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePayload } from '../../src/cli/control.js';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { brokerUrls } from '../observability/support.js';

const CLI = join(ROOT, 'dist/cli/main.js');

function cli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, JOBRUNNER_CONFIG: '', JOBRUNNER_TOKEN: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'jobrunner-push-'));
}

/** a port nothing listens on: bound, then closed */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('payloads: JSON when it parses, text otherwise, an error when it looks like JSON and does not parse', () => {
  assert.deepEqual(parsePayload('{"to":"a@b.c"}'), { to: 'a@b.c' });
  assert.equal(parsePayload('42'), 42);
  assert.equal(parsePayload('hello world'), 'hello world');
  assert.equal(parsePayload('{"to":', 'text'), '{"to":');
  assert.equal(parsePayload('42', 'text'), '42');
  assert.throws(() => parsePayload('{"to": a@b.c}'), /the payload is not valid JSON \(.*\); pass --text to send it as a string/);
  assert.throws(() => parsePayload("['a']"), /not valid JSON/);
  assert.throws(() => parsePayload('hello', 'json'), /^JobrunnerError: the payload is not valid JSON \([^)]*\)$/);
});

test('push with a payload that looks like JSON but does not parse: exit 2 before connecting anywhere', async () => {
  const r = await cli(['push', '--address', '127.0.0.1:1', 'default', 'Job', '{"to":'], ROOT);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^jobrunner: the payload is not valid JSON \(.*\); pass --text to send it as a string \[E_USAGE\]\n$/);
});

test('push to a refused address ends at once, not after --timeout', async () => {
  const dir = tempDir();
  try {
    const port = await closedPort();
    writeFileSync(join(dir, 'jobs.yaml'), `amqp: { addr: "amqp://guest:guest@127.0.0.1:${port}/" }\njobs:\n  pipelines:\n    a: { driver: amqp, config: { queue: q } }\n`);
    const r = await cli(['push', '-c', 'jobs.yaml', 'a', 'Job', '{}', '--timeout', '60'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^jobrunner: cannot reach the broker of pipeline a: cannot connect to amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${port}/: ECONNREFUSED \\[E_BROKER_CONNECT\\]\\n$`));
    assert.ok(r.ms < 30_000, `took ${r.ms} ms of a 60 s timeout`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const brokers = brokerUrls('AMQP091_URLS');
test('push with a wrong password ends at once with the broker\'s answer', { skip: 'skip' in brokers ? brokers.skip : false }, async () => {
  const url = new URL((brokers as { urls: string[] }).urls[0]!);
  url.password = 'not-the-password';
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'jobs.yaml'), `amqp: { addr: "${url.href}" }\njobs:\n  pipelines:\n    a: { driver: amqp, config: { queue: q } }\n`);
    const r = await cli(['push', '-c', 'jobs.yaml', 'a', 'Job', '{}', '--timeout', '60'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^jobrunner: cannot reach the broker of pipeline a: cannot connect to amqp:\/\/guest:\*\*\*@.*ACCESS.REFUSED/);
    assert.doesNotMatch(r.stderr, /not-the-password/);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms of a 60 s timeout`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('status and pause read only the http part of the file; a wrong or missing token says "invalid token"', async () => {
  const d = await startDaemon(['version: "3"', 'http: { address: "127.0.0.1:0", token: "right" }', 'jobs:', '  pipelines:', '    a: { driver: memory }', ''].join('\n'));
  const dir = tempDir();
  try {
    const address = d.url.replace('http://', '');
    // an unset variable outside http (a broker password this shell does not have) stops nothing
    writeFileSync(
      join(dir, 'jobs.yaml'),
      [`amqp: { addr: "amqp://app:\${BROKER_PASSWORD}@broker:5672/" }`, `http: { address: "${address}", token: "\${TOKEN:-wrong}" }`, 'jobs:', '  pipelines:', '    a: { driver: memory }', ''].join('\n'),
    );
    const status = await cli(['status', '-c', 'jobs.yaml', '--json'], dir);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as Array<{ pipeline: string }>)[0]?.pipeline, 'a');
    const wrong = await cli(['pause', 'a', '-c', 'jobs.yaml'], dir);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^jobrunner: POST \/pipelines\/a\/pause: 401 invalid token: the daemon refused the token given/);
    const none = await cli(['pause', 'a', '--address', address], dir);
    assert.match(none.stderr, /401 invalid token: the daemon wants a token/);
    const right = await cli(['pause', 'a', '--address', address, '--token', 'right'], dir);
    assert.equal(right.code, 0, right.stderr);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
