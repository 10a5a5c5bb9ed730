// Docs that cannot drift: the key reference in docs/configuration.md is the schema's rendering and names
// every property path; docs/errors.md lists exactly the codes of ERROR_CODES.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configSchema } from '../../src/config/index.js';
import { schemaKeys, withReference } from '../../src/config/reference.js';
import { ERROR_CODES } from '../../src/shared/errors.js';

test('docs/configuration.md carries the current key reference (run scripts/gen-config-docs.ts)', () => {
  const doc = readFileSync('docs/configuration.md', 'utf8');
  assert.equal(doc, withReference(doc, configSchema()));
});

test('docs/configuration.md mentions every property path of the schema', () => {
  const doc = readFileSync('docs/configuration.md', 'utf8');
  const rows = schemaKeys(configSchema() as object);
  assert.ok(rows.length > 100, `only ${rows.length} keys`);
  for (const r of rows) {
    assert.ok(doc.includes(`\`${r.path}\``), `docs/configuration.md does not mention ${r.path}`);
    assert.ok(r.description.length > 0, `${r.path} has no description in the schema`);
  }
});

test('docs/errors.md lists exactly the codes of ERROR_CODES', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const documented = [...doc.matchAll(/^\| `(E_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
});
