// `npm pack` + a global install is a working jobrunner: the tarball is built by prepack (dist/ inside),
// carries docs/ and LICENSE, and the installed command serves a bundled config from another folder,
// processing a pushed job. Packs a copy of the repository (so the build does not touch this one's dist/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

const NPM_TIMEOUT = 240_000;

test('npm pack builds dist/ and ships docs and LICENSE; the global install serves a bundled config from another folder', { timeout: 480_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'jobrunner-pack-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const copy = join(work, 'repo');
  mkdirSync(copy);
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'src', 'schemas', 'config', 'examples', 'docs']) {
    cpSync(join(ROOT, entry), join(copy, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));

  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: copy, encoding: 'utf8', timeout: NPM_TIMEOUT, stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed[0]!.files.map((f) => f.path);
  for (const f of ['dist/cli/main.js', 'dist/config/index.js', 'schemas/config.schema.json', 'docs/configuration.md', 'LICENSE', 'README.md', 'config/memory.yaml', 'examples/node/worker.mjs']) {
    assert.ok(files.includes(f), `the tarball holds ${f}`);
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests in the tarball');

  const prefix = join(work, 'prefix');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(work, packed[0]!.filename)], {
    cwd: work,
    encoding: 'utf8',
    timeout: NPM_TIMEOUT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const bin = join(prefix, 'bin', 'jobrunner');
  const elsewhere = join(work, 'elsewhere');
  mkdirSync(elsewhere);
  const env = { ...process.env, JOBRUNNER_CONFIG: '' };
  const version = spawnSync(bin, ['--version'], { cwd: elsewhere, encoding: 'utf8', env });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/);

  // the bundled memory config names its worker relative to itself: it works from any folder
  const installed = join(prefix, 'lib', 'node_modules', 'jobrunner');
  assert.ok(readdirSync(installed).includes('LICENSE'));
  const daemon = spawn(bin, ['serve', '-c', join(installed, 'config', 'memory.yaml'), '--http-address', '127.0.0.1:0'], { cwd: elsewhere, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  let log = '';
  const seen = (re: RegExp): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = log.match(re);
        if (m) resolve(m);
        return m !== null;
      };
      if (check()) return;
      const onData = (): void => {
        if (check()) daemon.stdout.off('data', onData);
      };
      daemon.stdout.on('data', onData);
      void exited.then(() => reject(new Error(`the daemon exited; its log:\n${log}`)));
    });
  daemon.stdout.on('data', (b: Buffer) => (log += b.toString()));
  daemon.stderr.on('data', (b: Buffer) => (log += b.toString()));
  try {
    const address = (await seen(/"address":"(127\.0\.0\.1:\d+)","msg":"http server listening"/))[1]!;
    const push = spawnSync(bin, ['push', '--address', address, 'default', 'SendEmail', '{"to":"a@b.c"}'], { cwd: elsewhere, encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(push.status, 0, push.stderr);
    const id = push.stdout.trim().split(/\s+/).pop()!;
    await seen(new RegExp(`processed SendEmail ${id}`));
  } finally {
    daemon.kill('SIGTERM');
  }
  assert.equal(await exited, 0, log);
});
