// Safe defaults from a newcomer's folder: ./.rr.yaml is found after ./jobs.yaml; the embedded demo says so
// loudly; JOBRUNNER_HTTP_ADDRESS moves the control API; a bundled config runs from any folder because its
// worker path is relative to the config file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../helpers/daemon.js';

const CLI = join(ROOT, 'dist/cli/main.js');

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 30_000, env: { ...process.env, JOBRUNNER_CONFIG: '', JOBRUNNER_HTTP_ADDRESS: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null, stdout, stderr });
    });
  });
}

/** starts serve, collects its JSON log lines, resolves once `until` matched a line */
async function serveUntil(args: string[], cwd: string, env: NodeJS.ProcessEnv, until: (l: Record<string, unknown>) => boolean) {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd, env: { ...process.env, JOBRUNNER_CONFIG: '', JOBRUNNER_HTTP_ADDRESS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const lines = createInterface({ input: child.stdout });
  const waitLine = (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const hit = logs.find(pred);
      if (hit) return resolve(hit);
      lines.on('line', (line) => {
        const l = JSON.parse(line) as Record<string, unknown>;
        if (pred(l)) resolve(l);
      });
      void exited.then((code) => reject(new Error(`serve exited ${String(code)}: ${stderr}`)));
    });
  lines.on('line', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  await waitLine(until);
  return { child, exited, logs, waitLine };
}

test('validate and serve find ./.rr.yaml when there is no ./jobs.yaml', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-rr-'));
  try {
    writeFileSync(join(dir, '.rr.yaml'), ["version: '3'", 'server: { command: "php worker.php" }', 'jobs:', '  consume: [a]', '  pipelines:', '    a: { driver: memory }', ''].join('\n'));
    const v = await run(['validate'], dir);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, '.rr.yaml: ok (1 pipeline)\n');
    writeFileSync(join(dir, 'jobs.yaml'), ['jobs:', '  consume: [b, c]', '  pipelines:', '    b: { driver: memory, command: w }', '    c: { driver: memory, command: w }', ''].join('\n'));
    assert.equal((await run(['validate'], dir)).stdout, 'jobs.yaml: ok (2 pipelines)\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the embedded demo says so in one loud line; JOBRUNNER_HTTP_ADDRESS moves the control API', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-demo-'));
  try {
    const d = await serveUntil([], dir, { JOBRUNNER_HTTP_ADDRESS: '127.0.0.1:0' }, (l) => l['msg'] === 'jobrunner started');
    const loud = d.logs.filter((l) => String(l['msg']).startsWith('RUNNING THE EMBEDDED DEMO'));
    assert.equal(loud.length, 1);
    assert.equal(loud[0]?.['level'], 'warn');
    const listening = d.logs.find((l) => l['msg'] === 'http server listening');
    assert.match(String(listening?.['address']), /^127\.0\.0\.1:\d+$/);
    assert.notEqual(listening?.['address'], '127.0.0.1:2114');
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
    // a control address other hosts can reach, without a token, is refused
    const open = await run(['serve', '--http-address', '0.0.0.0:0'], dir);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /--http-address 0\.0\.0\.0:0 is reachable from other hosts and no http\.token is set/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundled config runs from any folder: its worker path is relative to the config file', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-elsewhere-'));
  try {
    const d = await serveUntil(['-c', join(ROOT, 'config/memory.yaml'), '--http-address', '127.0.0.1:0'], dir, {}, (l) => l['msg'] === 'http server listening');
    const address = String(d.logs.find((l) => l['msg'] === 'http server listening')?.['address']);
    const push = await run(['push', '--address', address, 'default', 'SendEmail', '{"to":"a@b.c"}'], dir);
    assert.equal(push.code, 0, push.stderr);
    const id = push.stdout.trim();
    const processed = await d.waitLine((l) => String(l['msg']).startsWith(`processed SendEmail ${id}`));
    assert.equal(processed['stream'], 'stderr');
    assert.ok(!d.logs.some((l) => l['msg'] === 'worker exited' && l['reason'] === 'crash'), 'no worker crashed');
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
