// Keeps the imports pointing down (STYLE.md): cli -> daemon -> {config, pipelines -> drivers/driver.ts,
// pool -> protocol}; shared imports nothing of ours; concrete drivers are reached only through
// src/drivers/registry.ts, and pipelines/, observability/, http/ and cli/ never name a driver.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/daemon.js';

const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** top-level area of a file under src/ ("drivers/*" for any driver folder, "drivers" for driver.ts, registry.ts, ...) */
function area(file: string): string {
  const parts = relative(SRC, file).split('/');
  if (parts[0] === 'drivers' && parts.length > 2) return 'drivers/*';
  return parts[0] as string;
}

/** the driver folder of a file, or undefined */
function driverFolder(file: string): string | undefined {
  const parts = relative(SRC, file).split('/');
  return parts[0] === 'drivers' && parts.length > 2 ? (parts[1] as string) : undefined;
}

/** what each area may import (besides itself and shared) */
const ALLOWED: Record<string, string[]> = {
  shared: [],
  protocol: [],
  // the registry only: each driver's option normaliser and schema-derived driver list
  config: ['drivers'],
  observability: ['config', 'drivers'],
  pool: ['config', 'protocol', 'observability'],
  // registry.ts lists the driver folders
  drivers: ['config', 'observability', 'drivers/*'],
  'drivers/*': ['config', 'drivers', 'observability'],
  pipelines: ['config', 'drivers', 'pool', 'protocol', 'observability'],
  http: ['protocol', 'observability'],
  rpc: ['config', 'protocol', 'observability'],
  daemon: ['config', 'drivers', 'pipelines', 'pool', 'protocol', 'http', 'rpc', 'observability'],
  cli: ['config', 'daemon', 'drivers', 'http', 'protocol', 'observability'],
};

/** outside src/drivers/, only these files of it may be imported: the interface and the registry */
const DRIVERS_FACE = new Set(['drivers/driver.ts', 'drivers/registry.ts']);

test('imports point down the layers of STYLE.md', () => {
  const wrong: string[] = [];
  let checked = 0;
  for (const file of files(SRC)) {
    const from = area(file);
    const allowed = ALLOWED[from];
    assert.ok(allowed, `no rule for src/${from}: add it to ALLOWED`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      checked++;
      const targetFile = resolve(dirname(file), m[1] as string).replace(/\.js$/, '.ts');
      const target = area(targetFile);
      const rel = relative(SRC, targetFile);
      if (!from.startsWith('drivers') && target.startsWith('drivers') && !DRIVERS_FACE.has(rel)) {
        wrong.push(`${relative(ROOT, file)} imports ${m[1]} (only drivers/driver.ts and drivers/registry.ts outside src/drivers/)`);
        continue;
      }
      // a driver folder stands alone: what two drivers share lives in src/drivers/ itself
      if (from === 'drivers/*' && target === 'drivers/*' && driverFolder(file) !== driverFolder(targetFile)) {
        wrong.push(`${relative(ROOT, file)} imports ${m[1]} (one driver folder from another)`);
        continue;
      }
      if (from === 'drivers' && target === 'drivers/*' && !file.endsWith('registry.ts')) {
        wrong.push(`${relative(ROOT, file)} imports ${m[1]} (only registry.ts reaches into driver folders)`);
        continue;
      }
      if (target === from || target === 'shared' || allowed.includes(target)) continue;
      wrong.push(`${relative(ROOT, file)} imports ${m[1]} (${from} -> ${target})`);
    }
  }
  assert.ok(checked > 100, `only ${checked} relative imports found: the pattern is broken`);
  assert.deepEqual(wrong, []);
});

test('console output and process.exit only in src/cli', () => {
  const wrong = files(SRC)
    .filter((f) => area(f) !== 'cli')
    .flatMap((f) => {
      const text = readFileSync(f, 'utf8').replace(/\/\/.*$/gm, '');
      return /\bconsole\.|process\.exit\(/.test(text) ? [relative(ROOT, f)] : [];
    });
  assert.deepEqual(wrong, []);
});

test('pipelines/, observability/, http/ and cli/ name no driver: they read capabilities and descriptors', () => {
  const wrong: string[] = [];
  for (const dir of ['pipelines', 'observability', 'http', 'cli']) {
    for (const file of files(join(SRC, dir))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const m = /\b(amqp091|amqp1|amqp|memory|nats|sqs)\b/i.exec(line);
          if (m) wrong.push(`${relative(ROOT, file)}:${i + 1}: ${m[0]}`);
        });
    }
  }
  assert.deepEqual(wrong, []);
});

test('the driver-name check would catch a name (it is not vacuous)', () => {
  assert.match("if (config.driver !== 'memory')", /\b(amqp091|amqp1|amqp|memory|nats|sqs)\b/i);
  assert.ok(files(join(SRC, 'pipelines')).length > 2);
});

/** dependency-cruiser with .dependency-cruiser.cjs (no-circular, type-only imports included) on `paths` */
function cruise(...paths: string[]): { status: number | null; out: string } {
  const bin = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
  assert.ok(existsSync(bin), 'dependency-cruiser is not installed: run npm install');
  const r = spawnSync(process.execPath, [bin, ...paths, '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('no circular imports in src/, type-only imports included (dependency-cruiser)', { timeout: 120_000 }, () => {
  const r = cruise('src');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /no dependency violations found \((\d{2,}) modules/);
});

test('the circular-import check sees a type-only cycle (it is not vacuous)', { timeout: 120_000 }, () => {
  const r = cruise('test/fixtures/import-cycle');
  assert.notEqual(r.status, 0);
  assert.match(r.out, /no-circular: test\/fixtures\/import-cycle\/a\.ts/);
});

test('the pool and the pipelines know a worker protocol only through src/protocol/codec.ts', () => {
  const wrong: string[] = [];
  let seen = 0;
  for (const file of files(SRC)) {
    const from = area(file);
    if (from !== 'pool' && from !== 'pipelines') continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      const target = relative(SRC, resolve(dirname(file), m[1] as string));
      if (!target.startsWith('protocol/')) continue;
      seen++;
      if (target !== 'protocol/codec.js') wrong.push(`${relative(ROOT, file)} imports ${m[1]}`);
    }
  }
  assert.ok(seen > 0, 'the pool imports the codec interface: the pattern is broken');
  assert.deepEqual(wrong, []);
});

// Node's fetch keeps idle keep-alive sockets and reuses one the daemon has already closed when this
// process was starved of CPU ("other side closed"): tests call the daemon through test/helpers/http.ts,
// a fresh connection per request
const BARE_FETCH = /(?<![.\w])fetch\(/;

test('tests reach an HTTP API only through test/helpers/http.ts, never a bare fetch()', () => {
  const TEST = join(ROOT, 'test');
  const offenders = files(TEST).filter((f) => f !== join(TEST, 'helpers', 'http.ts') && f !== join(TEST, 'architecture.test.ts') && readFileSync(f, 'utf8').split('\n').some((l) => !l.trimStart().startsWith('//') && BARE_FETCH.test(l)));
  assert.deepEqual(offenders.map((f) => relative(ROOT, f)), []);
});

test('the bare fetch() check would catch one (it is not vacuous)', () => {
  assert.ok(BARE_FETCH.test('const r = await fetch(`${base}/metrics`);'));
  assert.ok(!BARE_FETCH.test('await ch.prefetch(10); const it = await consumer.fetch({ max_messages: 1 });'));
});
