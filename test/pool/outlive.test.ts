// Hardening case 7: a worker never outlives the daemon. The built CLI runs busy workers (an argv list and a
// `sh -c` string whose node child is a grandchild); the daemon is SIGKILLed, where none of its code runs,
// and every worker process (grandchildren included) must be gone. SIGUSR2 must not end the daemon.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpJson, waitFor } from '../helpers/daemon.js';
import { CLI, SCRIPTED, freePort, sleep, spawnServe } from '../helpers/faults.js';

const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);
const T = { timeout: 60_000, skip: cliMissing };

/** every process below `pid` (children, grandchildren...) */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((r) => r.length === 2 && r.every(Number.isInteger)) as Array<[number, number]>;
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [c, pp] of rows) if (pp === p && !out.includes(c)) (out.push(c), walk(c));
  };
  walk(pid);
  return out;
}

function isReaper(pid: number): boolean {
  try {
    return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).includes('trap');
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function serveBusy(dir: string, command: string): Promise<{ d: ReturnType<typeof spawnServe>; url: string; workers: number[] }> {
  const port = await freePort();
  const file = join(dir, 'jobs.yaml');
  writeFileSync(file, ['version: "3"', `server: { command: ${command} }`, `http: { address: "127.0.0.1:${port}" }`, 'jobs:', '  consume: [work]', '  pool: { num_workers: 2, max_concurrency: 1, destroy_timeout: 2s }', '  pipelines:', '    work: { driver: memory }', ''].join('\n'));
  const d = spawnServe(file);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('ready', async () => (await httpJson('GET', `${url}/ready`).catch(() => ({ status: 0 }))).status === 200, 20_000);
  for (let i = 0; i < 2; i++) assert.equal((await httpJson('POST', `${url}/pipelines/work/jobs`, { job: 'T', payload: { action: 'hang' } })).status, 202);
  await waitFor('both jobs held', async () => ((await httpJson('GET', `${url}/pipelines`)).body as Array<{ active: number }>)[0]?.active === 2, 20_000);
  // the worker processes (for sh -c, the node grandchildren too), not the reaper
  const workers = await waitFor('worker processes', () => {
    const ps = descendants(d.child.pid!).filter((p) => !isReaper(p));
    return ps.length >= 2 ? ps : undefined;
  }, 20_000);
  return { d, url, workers };
}

for (const [form, command] of [
  ['an argv list', JSON.stringify([process.execPath, SCRIPTED])],
  ['a sh -c string', JSON.stringify(`${process.execPath} ${SCRIPTED}`)],
] as const) {
  test(`case 7: busy workers (${form}) die with a SIGKILLed daemon`, T, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobrunner-outlive-'));
    let workers: number[] = [];
    try {
      const busy = await serveBusy(dir, command);
      workers = busy.workers;
      assert.ok(workers.length >= 2, `worker processes: ${workers.join(' ')}`);
      busy.d.child.kill('SIGKILL');
      await busy.d.exited;
      await waitFor('every worker process gone', () => workers.every((p) => !alive(p)), 15_000);
    } finally {
      for (const p of workers) if (alive(p)) process.kill(p, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('case 7: SIGUSR2 does not end the daemon; SIGTERM then stops it and its workers', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-outlive-'));
  let workers: number[] = [];
  try {
    const busy = await serveBusy(dir, JSON.stringify([process.execPath, SCRIPTED]));
    workers = busy.workers;
    busy.d.child.kill('SIGUSR2');
    await sleep(500);
    assert.equal(busy.d.child.exitCode, null, 'still running after SIGUSR2');
    assert.equal((await httpJson('GET', `${busy.url}/health`)).status, 200);
    assert.match(busy.d.output(), /signal ignored/);
    busy.d.child.kill('SIGTERM');
    const exit = await busy.d.exited;
    assert.equal(exit.code, 0);
    await waitFor('every worker process gone', () => workers.every((p) => !alive(p)), 15_000);
  } finally {
    for (const p of workers) if (alive(p)) process.kill(p, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
