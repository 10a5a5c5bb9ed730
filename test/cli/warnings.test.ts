// Everything `jobrunner serve` prints is a JSON log line (issue 12 item 7), Node's own process warnings
// included: a daemon (the built CLI) preloaded with test/fixtures/emit-warnings.mjs makes Node warn three
// ways on SIGUSR2, and each warning comes out as one JSON line (code W_NODE), with no bare
// "(node:PID) Warning: ..." on stdout or stderr; what a library prints with console.* is one JSON line
// too (code W_CONSOLE).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, startServe } from '../helpers/cli.js';
import { ROOT } from '../helpers/daemon.js';
import { waitFor } from '../helpers/wait.js';

const PRELOAD = pathToFileURL(join(ROOT, 'test/fixtures/emit-warnings.mjs')).href;

test('serve: Node process warnings are JSON log lines, and nothing else is printed', { timeout: 90_000 }, async () => {
  assert.ok(existsSync(CLI), 'dist/cli/main.js: run npm run build first');
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-warnings-'));
  const file = join(dir, 'jobs.yaml');
  writeFileSync(
    file,
    [
      'version: "3"',
      'server:',
      `  command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(join(ROOT, 'test/fixtures/workers/echo.mjs'))}]`,
      'http:',
      '  address: "127.0.0.1:0"',
      'logs: { level: info }',
      'jobs:',
      '  consume: ["work"]',
      '  pool: { num_workers: 1, destroy_timeout: 5s }',
      '  pipelines:',
      '    work: { driver: memory }',
      '',
    ].join('\n'),
  );
  const serve = await startServe(file, { cwd: dir, env: { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${PRELOAD}`.trim() } });
  try {
    const warnings = (): Array<Record<string, unknown>> =>
      serve
        .output()
        .split('\n')
        .filter((l) => l.includes('W_NODE'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    serve.child.kill('SIGUSR2');
    const printed = (): boolean => ['a warning from the test', 'a deprecation from the test', 'memory leak detected', 'error on write', 'a library says hello'].every((w) => serve.output().includes(w));
    await waitFor('the three warnings printed', printed, 30_000);
    assert.equal(await serve.stop(20_000), 0, 'serve exits 0 on SIGTERM');
    const lines = serve.output().split('\n').filter((l) => l.trim() !== '');
    const bare = lines.filter((l) => {
      try {
        return typeof JSON.parse(l) !== 'object';
      } catch {
        return true;
      }
    });
    assert.deepEqual(bare, [], 'every line printed is a JSON log line');
    const got = warnings().map((w) => ({ level: w['level'], warning: w['warning'], node_code: w['node_code'], msg: String(w['msg']).replace(/ detected.*/, ' detected') }));
    assert.deepEqual(got, [
      { level: 'warn', warning: 'TestWarning', node_code: undefined, msg: 'a warning from the test' },
      { level: 'warn', warning: 'DeprecationWarning', node_code: 'DEP_JOBRUNNER_TEST', msg: 'a deprecation from the test' },
      { level: 'warn', warning: 'MaxListenersExceededWarning', node_code: undefined, msg: 'Possible EventEmitter memory leak detected' },
    ]);
    const consoleLines = lines
      .filter((l) => l.includes('W_CONSOLE'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .map((l) => ({ level: l['level'], msg: l['msg'] }));
    assert.deepEqual(consoleLines, [
      { level: 'warn', msg: "[connection-1] error on write: ProtocolError: Close already received { product: 'RabbitMQ' }" },
      { level: 'info', msg: 'a library says hello' },
    ]);
  } finally {
    await serve.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
