// RoadRunner's logs keys: `encoding: console` (or `mode: development`) prints one human line per event
// through pino-pretty; JSON lines stay the default (production, the image); `output` sends them elsewhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigText } from '../../src/config/index.js';
import { FIXTURE_WORKERS, ROOT } from '../helpers/daemon.js';

const CLI = join(ROOT, 'dist/cli/main.js');

test('logs keys: encoding wins, else mode development means console; JSON and stdout by default', () => {
  const logs = (section: string): unknown => checkConfigText('c.yaml', `logs: ${section}\n`, {}).config?.logs;
  assert.deepEqual(logs('{}'), { level: 'info' });
  assert.deepEqual(logs('{ mode: production }'), { level: 'info' });
  assert.deepEqual(logs('{ mode: development, level: debug }'), { level: 'debug', encoding: 'console' });
  assert.deepEqual(logs('{ mode: development, encoding: json }'), { level: 'info' });
  assert.deepEqual(logs('{ encoding: console, output: stderr }'), { level: 'info', encoding: 'console', output: 'stderr' });
  assert.match(checkConfigText('c.yaml', 'logs: { encoding: pretty }\n', {}).problems[0]?.message ?? '', /must be one of console, json/);
});

/** runs serve until "jobrunner started" appears in the file or stream it logs to, then SIGTERM */
async function serveOnce(logs: string, dir: string, logFile?: string): Promise<{ stdout: string; code: number | null }> {
  const worker = join(FIXTURE_WORKERS, 'echo.mjs');
  const file = join(dir, 'jobs.yaml');
  writeFileSync(file, [`server: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(worker)}] }`, 'http: { address: "127.0.0.1:0" }', `logs: ${logs}`, 'jobs:', '  consume: [a]', '  pool: { num_workers: 1 }', '  pipelines:', '    a: { driver: memory }', ''].join('\n'));
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const started = (): boolean => (logFile ? existsSync(logFile) && readFileSync(logFile, 'utf8') : stdout).toString().includes('jobrunner started');
  while (!started()) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  return { stdout, code: await exited };
}

test('encoding: console prints one readable line per event; the default stays JSON; output: a file', { timeout: 60_000 }, async () => {
  assert.ok(existsSync(join(FIXTURE_WORKERS, 'echo.mjs')), 'the echo fixture worker');
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-logs-'));
  try {
    const pretty = await serveOnce('{ encoding: console }', dir);
    assert.equal(pretty.code, 0);
    const lines = pretty.stdout.trimEnd().split('\n');
    assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: jobrunner started \{"pipelines":\["a"\],"file":".*jobs\.yaml"\}$/.test(l)), pretty.stdout);
    assert.ok(lines.every((l) => !l.startsWith('{')), 'no JSON line in console encoding');

    const json = await serveOnce('{ mode: production }', dir);
    assert.equal(json.code, 0);
    for (const l of json.stdout.trimEnd().split('\n')) assert.equal(typeof (JSON.parse(l) as { msg: string }).msg, 'string');

    const logFile = join(dir, 'logs', 'jobrunner.log');
    const toFile = await serveOnce(`{ output: ${JSON.stringify(logFile)} }`, dir, logFile);
    assert.equal(toFile.code, 0);
    assert.equal(toFile.stdout, '');
    assert.ok(readFileSync(logFile, 'utf8').split('\n').some((l) => l.includes('"msg":"jobrunner started"')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
