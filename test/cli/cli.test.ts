// The built CLI as users run it: exit codes (0 / 1 / 2), one-line errors, validate's exact text,
// schema, version, and push straight through the amqp091 driver (waits for the broker's confirm).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { ROOT } from '../helpers/daemon.js';
import { runCli } from '../helpers/cli.js';
import { brokerUrls } from '../drivers/conformance.js';

const run = runCli;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'jobrunner-cli-'));
}

test('--version prints the package version; --help lists the commands', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const v = await run(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = await run(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['serve', 'validate', 'push', 'status', 'pause', 'resume', 'workers', 'reset', 'schema']) assert.match(h.stdout, new RegExp(`\\b${c}\\b`));
});

test('a usage mistake exits 2 with one line and no stack trace', async () => {
  const r = await run(['bogus']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'bogus'/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('validate prints every problem as file:line:col path: message and exits 2', async () => {
  const dir = tempDir();
  try {
    writeFileSync(
      join(dir, 'jobs.yaml'),
      ['version: "3"', 'amqp:', '  addr: amqp://guest:guest@127.0.0.1:5672/', 'jobs:', '  consume: [orders, ghost]', '  pipelines:', '    orders:', '      driver: amqp', '      config:', '        prefech: 10', ''].join('\n'),
    );
    const r = await run(['validate', '-c', 'jobs.yaml'], { cwd: dir });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.deepEqual(lines, [
      'jobs.yaml:5:21 jobs.consume[1]: consume names unknown pipeline `ghost`; pipelines: orders',
      "jobs.yaml:7:5 jobs.pipelines.orders: no worker command: set server.command, jobs.pool.command or this pipeline's `command`",
      'jobs.yaml:10:9 jobs.pipelines.orders.config.prefech: unknown key `prefech`; did you mean `prefetch`?',
      'jobs.yaml: 3 problems',
    ]);
    // serve refuses the same file with exit 2 and the same problem
    const s = await run(['serve', '-c', 'jobs.yaml'], { cwd: dir });
    assert.equal(s.code, 2);
    assert.match(s.stderr, /^jobrunner: jobs\.yaml: 3 problems in the configuration/);
    assert.match(s.stderr, /\n  jobs\.yaml:10:9 jobs\.pipelines\.orders\.config\.prefech: unknown key/);
    assert.match(s.stderr, /\[E_CONFIG_SCHEMA\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('validate finds ./jobs.yaml and $JOBRUNNER_CONFIG, and says ok', async () => {
  const ok = await run(['validate', '-c', 'config/memory.yaml']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'config/memory.yaml: ok (1 pipeline)\n');
  const env = await run(['validate'], { env: { JOBRUNNER_CONFIG: 'config/amqp091.yaml' } });
  assert.equal(env.code, 0, env.stderr);
  assert.match(env.stdout, /^config\/amqp091\.yaml: ok \(\d+ pipelines\)\n$/);
  const dir = tempDir();
  try {
    const none = await run(['validate'], { cwd: dir });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no configuration: pass -c FILE, set JOBRUNNER_CONFIG, or put jobs\.yaml \(or \.rr\.yaml\) in the current folder \[E_USAGE\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing config file is one line naming it, exit 2', async () => {
  const r = await run(['serve', '-c', 'no/such/file.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no\/such\/file\.yaml/);
  assert.match(r.stderr, /\[E_CONFIG_READ\]/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('schema prints the JSON Schema from schemas/', async () => {
  const r = await run(['schema']);
  assert.equal(r.code, 0);
  const printed = JSON.parse(r.stdout) as unknown;
  const file = JSON.parse(readFileSync(join(ROOT, 'schemas/config.schema.json'), 'utf8')) as unknown;
  assert.deepEqual(printed, file);
});

test('push to a memory pipeline with no daemon running: one line, exit 1', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'jobs.yaml'), 'version: "3"\nserver: { command: "true" }\nhttp: { address: "127.0.0.1:9" }\njobs:\n  pipelines:\n    m: { driver: memory }\n');
    const r = await run(['push', '-c', 'jobs.yaml', 'm', 'Job', '{}'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^jobrunner: no jobrunner daemon answers at http:\/\/127\.0\.0\.1:9/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const urls = brokerUrls('AMQP091_URLS');

test('push on an amqp091 pipeline publishes with RoadRunner headers and waits for the confirm', async (t) => {
  if (!urls) return t.skip('AMQP091_URLS not set: run eval "$(sudo scripts/test-servers.sh)"');
  for (const url of urls) {
    const q = `jr-cli-push-${randomUUID().slice(0, 8)}`;
    const dir = tempDir();
    const conn = await amqp.connect(url);
    const ch = await conn.createChannel();
    try {
      writeFileSync(join(dir, 'jobs.yaml'), `version: "3"\nserver: { command: "true" }\namqp: { addr: "${url}" }\njobs:\n  pipelines:\n    p:\n      driver: amqp091\n      config: { queue: ${q}, exchange: "", routing_key: ${q} }\n`);
      const r = await run(['push', '-c', 'jobs.yaml', 'p', 'SendEmail', '-', '--header', 'tenant=acme', '--priority', '3', '--id', 'job-1'], { cwd: dir, input: '{"to":"a@b.c"}' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'job-1\n');
      const m = await ch.get(q, { noAck: true });
      assert.ok(m, 'the message is in the queue when push returns');
      assert.equal(m.content.toString(), '{"to":"a@b.c"}');
      assert.equal(m.properties.messageId, 'job-1');
      assert.equal(m.properties.headers?.['rr_job'], 'SendEmail');
      assert.equal(m.properties.headers?.['rr_id'], 'job-1');
      assert.equal(m.properties.headers?.['rr_pipeline'], 'p');
      assert.deepEqual(JSON.parse(String(m.properties.headers?.['rr_headers'])), { tenant: ['acme'] });
      assert.equal(Number(m.properties.headers?.['rr_priority']), 3);
    } finally {
      await ch.deleteQueue(q).catch(() => undefined);
      await conn.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('push to an unreachable broker gives up with one line, exit 1', async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir, 'jobs.yaml'), 'version: "3"\nserver: { command: "true" }\namqp: { addr: "amqp://guest:s3cretPW@127.0.0.1:9/" }\njobs:\n  pipelines:\n    p:\n      driver: amqp091\n      config: { queue: q, routing_key: q }\n');
    const r = await run(['push', '-c', 'jobs.yaml', 'p', 'Job', '{}', '--timeout', '1'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[E_BROKER_CONNECT\]/);
    assert.doesNotMatch(r.stderr, /s3cretPW/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
