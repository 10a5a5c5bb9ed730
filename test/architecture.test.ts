// Keeps the imports pointing down (STYLE.md): cli -> daemon -> {config, pipelines -> drivers/driver.ts,
// pool -> protocol}; shared imports nothing of ours; only the daemon picks concrete drivers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/daemon.js';

const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** top-level area of a file under src/ ("drivers/amqp091" for a concrete driver, "drivers" for driver.ts/wire.ts) */
function area(file: string): string {
  const parts = relative(SRC, file).split('/');
  if (parts[0] === 'drivers' && parts.length > 2) return `drivers/${parts[1]}`;
  return parts[0] as string;
}

/** what each area may import (besides itself and shared) */
const ALLOWED: Record<string, string[]> = {
  shared: [],
  protocol: [],
  config: [],
  observability: ['config', 'drivers'],
  pool: ['config', 'protocol', 'observability'],
  drivers: ['config', 'observability'],
  'drivers/memory': ['config', 'drivers', 'observability'],
  'drivers/amqp091': ['config', 'drivers', 'observability'],
  'drivers/amqp1': ['config', 'drivers', 'observability'],
  pipelines: ['config', 'drivers', 'pool', 'protocol', 'observability'],
  http: ['protocol', 'observability'],
  daemon: ['config', 'drivers', 'drivers/memory', 'drivers/amqp091', 'drivers/amqp1', 'pipelines', 'pool', 'protocol', 'http', 'observability'],
  cli: ['config', 'daemon', 'http', 'protocol', 'observability'],
};

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
      const target = area(resolve(dirname(file), m[1] as string));
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
