// The docs stand on their own for someone who has only the repository: no references to a contract or
// issue tracker they do not have, no paths of one machine, and every environment variable the code reads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

function files(dir: string, ext: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

const docs = [...files(join(ROOT, 'docs'), '.md'), join(ROOT, 'README.md'), ...files(join(ROOT, 'config'), '')];

test('docs name no SPEC section, no issue number and no machine path', () => {
  const bad: string[] = [];
  for (const f of docs) {
    readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      if (/\bSPEC\b|§\s*\d|\\u00a7|\bissue \d+|\/work\/|\.\.\/shared\//.test(line.replace(/AMQP 1\.0 §[\d.]+/g, ''))) bad.push(`${f.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(bad, []);
});

test('every environment variable the code reads is documented in docs/configuration.md', () => {
  const read = new Set<string>();
  for (const f of files(join(ROOT, 'src'), '.ts')) {
    for (const m of readFileSync(f, 'utf8').matchAll(/process\.env\[['"]([A-Z0-9_]+)['"]\]/g)) read.add(m[1]!);
  }
  assert.ok(read.has('JOBRUNNER_DEBUG') && read.has('JOBRUNNER_CONFIG'));
  const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  assert.deepEqual([...read].filter((v) => !doc.includes(`\`${v}\``)), []);
});
