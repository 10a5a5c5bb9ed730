// `jobrunner workers`, `jobrunner reset`, POST /pipelines/NAME/reset and SIGHUP on the built CLI: the
// workers of a running daemon are listed, and restarted one at a time after their jobs, with every
// job pushed before and during the reset processed once (ids in = ids out) and the daemon still up.
// Also: SIGTERM does not wait destroy_timeout for jobs that no worker holds.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FIXTURE_WORKERS } from '../helpers/daemon.js';
import { OBS_WORKER, ROOT, http, tempDir, waitFor } from '../observability/support.js';

const CLI = join(ROOT, 'dist/cli/main.js');
let dir = '';
let out = '';

function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 20_000, env: { ...process.env, JOBRUNNER_CONFIG: '', JOBRUNNER_TOKEN: '' } }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null, stdout, stderr });
    });
  });
}

interface Served {
  child: ChildProcess;
  address: string;
  exited: Promise<number | null>;
  logs: Array<{ msg?: string; [k: string]: unknown }>;
}

async function serve(yaml: string[]): Promise<Served> {
  const file = join(dir, `jobs-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, yaml.join('\n'));
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs: Served['logs'] = [];
  const stderr: string[] = [];
  child.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()));
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; address?: string };
        logs.push(l);
        if (l.msg === 'http server listening' && l.address) resolve(l.address);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`serve exited ${String(code)}: ${stderr.join('')}`)));
  });
  return { child, address, exited, logs };
}

function received(): string[] {
  return existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { id: string }).id) : [];
}

before(() => {
  dir = tempDir();
  out = join(dir, 'received.ndjson');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('workers lists the processes; reset and SIGHUP replace them one at a time; nothing is lost', { timeout: 120_000 }, async () => {
  const d = await serve([
    'server:',
    `  command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(OBS_WORKER)}]`,
    `  env: { OBS_OUT: ${JSON.stringify(out)} }`,
    'http: { address: "127.0.0.1:0", token: "t0k" }',
    'jobs:',
    '  consume: [orders]',
    '  pool: { num_workers: 2, destroy_timeout: 10s }',
    '  pipelines:',
    '    orders: { driver: memory }',
    '',
  ]);
  try {
    await waitFor('ready', async () => (await http('GET', `http://${d.address}/ready`)).status === 200);
    const list = await cli('workers', '--address', d.address, '--json');
    assert.equal(list.status, 0, list.stderr);
    const before = JSON.parse(list.stdout) as Array<{ pipeline: string; pid: number; state: string; held: number; done: number; rss: number | null; restarts: number }>;
    assert.equal(before.length, 2);
    for (const w of before) {
      assert.equal(w.pipeline, 'orders');
      assert.ok(w.pid > 0);
      assert.equal(w.held, 0);
      assert.equal(w.restarts, 0);
    }
    const table = await cli('workers', 'orders', '--address', d.address);
    assert.match(table.stdout.split('\n')[0] ?? '', /^PIPELINE\s+PID\s+STATE\s+HELD\s+HELD FOR\s+DONE\s+RSS\s+AGE\s+RESTARTS$/);
    assert.equal(table.stdout.trimEnd().split('\n').length, 3);
    const unknown = await cli('workers', 'nope', '--address', d.address);
    assert.equal(unknown.status, 1);

    const ids: string[] = [];
    const push = async (n: number, tag: string): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const id = `${tag}-${i}`;
        ids.push(id);
        const r = await http('POST', `http://${d.address}/pipelines/orders/jobs`, { job: 'Slow', id, payload: { do: 'slow', ms: 100 } }, { authorization: 'Bearer t0k' });
        assert.equal(r.status, 202);
      }
    };
    await push(6, 'before');
    // the reset endpoint is a mutating one: it wants the token
    assert.equal((await http('POST', `http://${d.address}/pipelines/orders/reset`, {})).status, 401);
    const reset = await cli('reset', 'orders', '--address', d.address, '--token', 't0k');
    assert.equal(reset.status, 0, reset.stderr);
    assert.match(reset.stdout, /^orders: resetting/);
    await push(6, 'during');
    const pidsOf = async (): Promise<number[]> => ((await http('GET', `http://${d.address}/workers`)).body as Array<{ pid: number }>).map((w) => w.pid);
    await waitFor('both workers replaced', async () => (await pidsOf()).every((p) => !before.some((b) => b.pid === p)) && (await pidsOf()).length === 2, 30_000);
    const afterReset = await pidsOf();

    // SIGHUP: the same, and the daemon stays up
    d.child.kill('SIGHUP');
    await push(4, 'hup');
    await waitFor('SIGHUP replaced both workers', async () => (await pidsOf()).every((p) => !afterReset.includes(p)) && (await pidsOf()).length === 2, 30_000);
    assert.equal(d.child.exitCode, null, 'SIGHUP does not end the daemon');
    await waitFor('every job ran', () => ids.every((id) => received().includes(id)), 30_000);
    const got = received();
    assert.deepEqual([...got].sort(), [...ids].sort(), 'each job once: nothing lost, nothing twice');
    const rows = (await http('GET', `http://${d.address}/workers?pipeline=orders`)).body as Array<{ restarts: number }>;
    assert.equal(rows[0]?.restarts, 4);
    assert.ok(d.logs.some((l) => l.msg === 'workers reset'));
  } finally {
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
  }
});

test('SIGTERM returns jobs that no worker holds at once, not after destroy_timeout', { timeout: 60_000 }, async () => {
  const d = await serve([
    `server: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(FIXTURE_WORKERS, 'crash-on-start.mjs'))}] }`,
    'http: { address: "127.0.0.1:0" }',
    'jobs:',
    '  consume: [q]',
    '  pool: { num_workers: 1, destroy_timeout: 120s }',
    '  pipelines:',
    '    q: { driver: memory }',
    '',
  ]);
  for (let i = 0; i < 3; i++) assert.equal((await http('POST', `http://${d.address}/pipelines/q/jobs`, { job: 'J', payload: {} })).status, 202);
  await waitFor('the jobs wait for a worker', () => d.logs.filter((l) => l.msg === 'worker exited').length >= 1, 20_000);
  const stopping = Date.now();
  d.child.kill('SIGTERM');
  assert.equal(await d.exited, 0);
  const took = Date.now() - stopping;
  assert.ok(took < 60_000, `SIGTERM took ${took} ms with destroy_timeout 120 s`);
  // as many as the driver handed over before the stop (the memory driver's prefetch decides), at least one
  assert.ok(d.logs.some((l) => l.msg === 'returning jobs no worker holds to the broker' && Number(l['jobs']) >= 1), JSON.stringify(d.logs.slice(-8)));
});
