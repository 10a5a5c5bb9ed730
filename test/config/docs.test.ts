// Docs that cannot drift: the key reference in docs/configuration.md is the schema's rendering and names
// every property path; docs/errors.md lists exactly the codes of ERROR_CODES.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configSchema } from '../../src/config/index.js';
import { driverConfigGroups, schemaKeys, withReference } from '../../src/config/reference.js';
import { DRIVERS } from '../../src/drivers/registry.js';
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

test("every registered driver's pipeline options are in the key reference, in the registry's order", () => {
  const doc = readFileSync('docs/configuration.md', 'utf8');
  const groups = driverConfigGroups(configSchema() as object);
  assert.deepEqual([...new Set(groups.map((g) => g.label.split(',')[0]))], DRIVERS.map((d) => d.name));
  for (const d of DRIVERS) {
    assert.match(doc, new RegExp(`\\| \`jobs\\.pipelines\\.<name>\\.config \\(${d.name}[,)][^\`]*\\.[a-z_]+\` \\|`), `no ${d.name} pipeline keys in docs/configuration.md`);
  }
  // amqp091's two forms are named by their definitions' titles
  assert.deepEqual(
    groups.filter((g) => g.label.startsWith('amqp091')).map((g) => g.label),
    ['amqp091, flat form', 'amqp091, nested form: version 2'],
  );
});

test('a driver with forms and no titles: the default form first, each named by its condition', () => {
  const schema = {
    definitions: {
      a: { properties: { x: { type: 'string', description: 'x' } } },
      b: { properties: { y: { type: 'string', description: 'y' } } },
      pipeline: {
        allOf: [
          { if: { properties: { driver: { enum: ['two', 'alias'] } } }, then: { properties: { config: { if: { properties: { version: { enum: [2, '2'] } } }, then: { $ref: '#/definitions/b' }, else: { $ref: '#/definitions/a' } } } } },
          { if: { properties: { driver: { enum: ['one'] } } }, then: { properties: { config: { $ref: '#/definitions/a' } } } },
        ],
      },
    },
  };
  assert.deepEqual(driverConfigGroups(schema).map((g) => g.label), ['two, otherwise', 'two, when version: 2', 'one']);
  assert.deepEqual(schemaKeys(schema).map((r) => r.path), ['jobs.pipelines.<name>.config (two, otherwise).x', 'jobs.pipelines.<name>.config (two, when version: 2).y', 'jobs.pipelines.<name>.config (one).x']);
});

test('docs/errors.md lists exactly the codes of ERROR_CODES', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const documented = [...doc.matchAll(/^\| `(E_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
});
