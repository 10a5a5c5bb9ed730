// `jobrunner status`, `pause`, `resume` and `push --address` (the built CLI, dist/cli/main.js) against a
// running `jobrunner serve` child process on memory pipelines: every pipeline is printed, --json is the
// /pipelines answer, pause/resume change what status shows, a push through HTTP runs on a worker.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OBS_WORKER, http, tempDir, waitFor } from '../observability/support.js';
import { CLI, runCli, startServe, type Serve } from '../helpers/cli.js';
import { createServer, type AddressInfo } from 'node:net';


let dir = '';
let out = '';
let serve: Serve | undefined;
let address = '';

// async, not spawnSync: a blocked event loop keeps fetch from noticing that the daemon closed an idle
// keep-alive socket, and its next request then fails with "other side closed"
function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return runCli(args, { cwd: dir }).then((r) => ({ status: r.code, stdout: r.stdout, stderr: r.stderr }));
}

function received(): Array<{ id: string; pipeline: string }> {
  return existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: string; pipeline: string }) : [];
}

before(async () => {
  assert.ok(existsSync(CLI), 'dist/cli/main.js: run npm run build first');
  dir = tempDir();
  out = join(dir, 'received.ndjson');
  const file = join(dir, 'jobs.yaml');
  writeFileSync(
    file,
    [
      'version: "3"',
      'server:',
      `  command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(OBS_WORKER)}]`,
      `  env: { OBS_OUT: ${JSON.stringify(out)} }`,
      'http:',
      '  address: "127.0.0.1:0"',
      'logs: { level: info }',
      'jobs:',
      '  consume: ["orders", "emails"]',
      '  pool: { num_workers: 1, destroy_timeout: 5s }',
      '  pipelines:',
      '    orders: { driver: memory, config: { priority: 3 } }',
      '    emails: { driver: memory, pool: { num_workers: 2 } }',
      '    later: { driver: memory }',
      '',
    ].join('\n'),
  );
  serve = await startServe(file, { cwd: dir });
  address = serve.address;
  await waitFor('the daemon is ready', async () => (await http('GET', `http://${address}/ready`)).status === 200);
});

after(async () => {
  if (serve) assert.equal(await serve.stop(15_000), 0, 'serve exits 0 on SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('status prints every pipeline as a table', async () => {
  const r = await cli('status', '--address', address);
  assert.equal(r.status, 0, r.stderr);
  const [head, ...rows] = r.stdout.trimEnd().split('\n');
  assert.deepEqual(head?.split(/\s+/), ['PIPELINE', 'DRIVER', 'QUEUE', 'CONSUMING', 'READY', 'ACTIVE', 'DELAYED', 'WORKERS', 'ERROR']);
  assert.deepEqual(
    rows.map((l) => l.split(/\s+/)),
    [
      ['orders', 'memory', 'orders', 'yes', '0', '0', '0', '1'],
      ['emails', 'memory', 'emails', 'yes', '0', '0', '0', '2'],
      ['later', 'memory', 'later', 'no', '0', '0', '0', '0'],
    ],
  );
});

test('status --json is the /pipelines answer', async () => {
  const r = await cli('status', '--address', address, '--json');
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(rows, (await http('GET', `http://${address}/pipelines`)).body);
  assert.deepEqual(rows[0], { pipeline: 'orders', driver: 'memory', queue: 'orders', consuming: true, ready: 0, active: 0, delayed: 0, reserved: 0, workers: 1, priority: 3, error: null });
});

test('pause and resume change what status shows; push --address runs a job', async () => {
  const paused = await cli('pause', 'orders', '--address', address);
  assert.equal(paused.status, 0, paused.stderr);
  assert.equal(paused.stdout, 'orders: paused\n');
  assert.equal((await http('GET', `http://${address}/ready`)).status, 503);

  const pushed = await cli('push', 'orders', 'Ship', '{"do":"ack"}', '--address', address, '--id', 'cli-job-1', '--json');
  assert.equal(pushed.status, 0, pushed.stderr);
  assert.deepEqual(JSON.parse(pushed.stdout), { id: 'cli-job-1', pipeline: 'orders' });
  const table = (await cli('status', '--address', address)).stdout.split('\n');
  assert.deepEqual(table[1]?.split(/\s+/).slice(0, 5), ['orders', 'memory', 'orders', 'no', '1']);
  assert.equal(received().length, 0, 'nothing runs while paused');

  const resumed = await cli('resume', 'orders', '--address', address, '--json');
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(JSON.parse(resumed.stdout), { pipeline: 'orders', consuming: true });
  await waitFor('the pushed job ran', () => received().some((r) => r.id === 'cli-job-1' && r.pipeline === 'orders'));
  assert.equal((await http('GET', `http://${address}/ready`)).status, 200);
});

/** a loopback port nothing listens on */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('errors: an unknown pipeline, and no daemon at the address, are one line and exit 1', async () => {
  const unknown = await cli('pause', 'nope', '--address', address);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /^jobrunner: POST \/pipelines\/nope\/pause: 404 no pipeline named "nope".*\[E_HTTP\]\n$/);
  const port = await freePort();
  const none = await cli('status', '--address', `127.0.0.1:${port}`);
  assert.equal(none.status, 1);
  assert.match(none.stderr, new RegExp(`^jobrunner: no jobrunner daemon answers at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); is it running\\?.*\\n$`));
});
