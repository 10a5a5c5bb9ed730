// The precompiled config validator (src/config/config-validator.generated.ts) cannot drift from
// schemas/config.schema.json: it is regenerated here and compared with the committed file. Also: it
// pulls in none of ajv's compiler, and its errors carry what validateSchema() reads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ErrorObject } from 'ajv';
import validate from '../../src/config/config-validator.generated.js';
import { configSchema } from '../../src/config/schema.js';
import { DRIVERS } from '../../src/drivers/registry.js';

const GENERATED = 'src/config/config-validator.generated.ts';
const FIX = 'node scripts/gen-config-validator.mjs';

test(`${GENERATED} is up to date with schemas/config.schema.json (else run ${FIX})`, () => {
  const r = spawnSync(process.execPath, ['scripts/gen-config-validator.mjs', '--stdout'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${FIX} --stdout failed: ${r.stderr}`);
  const fresh = r.stdout;
  const committed = readFileSync(GENERATED, 'utf8');
  if (fresh !== committed) {
    const a = committed.split('\n');
    const b = fresh.split('\n');
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    const was = a[i] ?? '';
    const now = b[i] ?? '';
    let c = 0;
    while (c < was.length && was[c] === now[c]) c++;
    const around = (line: string | undefined): string => (line === undefined ? '<end of file>' : `…${line.slice(Math.max(0, c - 60), c + 60)}…`);
    assert.fail(
      `${GENERATED} is out of date with schemas/config.schema.json (or the ajv options/version changed): ` +
        `run \`${FIX}\` and commit the result. First difference at line ${i + 1}, column ${c + 1}:\n` +
        `  committed: ${around(a[i])}\n  expected:  ${around(b[i])}`,
    );
  }
});

test('schemas/config.schema.json is the base and every driver\'s fragment assembled (else run ' + FIX + ')', () => {
  const r = spawnSync(process.execPath, ['scripts/gen-config-validator.mjs', '--schema-stdout'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${FIX} --schema-stdout failed: ${r.stderr}`);
  assert.ok(r.stdout === readFileSync('schemas/config.schema.json', 'utf8'), `schemas/config.schema.json is out of date with src/config/schema.base.json and src/drivers/*/schema.json: run \`${FIX}\` and commit the result`);
});

test('the schema\'s driver list is the registry\'s: every name and alias, each driver\'s section', () => {
  const schema = configSchema() as { properties: Record<string, unknown>; definitions: { pipeline: { properties: { driver: { enum: string[] } } } } };
  assert.deepEqual(schema.definitions.pipeline.properties.driver.enum, DRIVERS.flatMap((d) => [d.name, ...d.aliases]));
  for (const d of DRIVERS) if (d.section) assert.ok(d.section.name in schema.properties, `section ${d.section.name} of ${d.name}`);
});

test('the generated validator loads only ajv runtime helpers, never the ajv compiler', () => {
  const code = readFileSync(GENERATED, 'utf8');
  const imports = [...code.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
  assert.deepEqual(imports.sort(), ['./formats.js', 'node:module']);
  const required = [...code.matchAll(/\b(?:require|ajvRuntimeRequire)\("([^"]+)"\)/g)].map((m) => m[1] as string);
  for (const r of required) assert.match(r, /^ajv\/dist\/runtime\/[a-z0-9]+$/i, `the generated code requires ${r}`);
});

const v = validate as unknown as ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

test('errors carry keyword, instancePath, params and (verbose) schema, parentSchema, data', () => {
  const data = { version: '3', jobs: { pool: { allocate_timeout: '5 minutes', num_workers: 'many' }, pipelines: { a: { driver: 'memory', prefech: 1 } } } };
  assert.equal(v(data), false);
  const errors = v.errors ?? [];
  const byKeyword = (k: string): ErrorObject | undefined => errors.find((e) => e.keyword === k);
  for (const e of errors) {
    assert.equal(typeof e.instancePath, 'string');
    assert.equal(typeof e.params, 'object');
    assert.ok('schema' in e && 'parentSchema' in e && 'data' in e, `not verbose: ${JSON.stringify(e)}`);
  }
  const format = byKeyword('format');
  assert.ok(format, JSON.stringify(errors));
  assert.equal(format.instancePath, '/jobs/pool/allocate_timeout');
  assert.equal((format.params as { format: string }).format, 'duration');
  assert.equal(format.data, '5 minutes');
  const type = byKeyword('type');
  assert.equal(type?.instancePath, '/jobs/pool/num_workers');
  assert.equal(type?.data, 'many');
  assert.equal(typeof type?.parentSchema, 'object');
});

test('the duration format is parseDuration, types are coerced and defaults filled in', () => {
  const data: Record<string, unknown> = { jobs: { pool: { allocate_timeout: '1h30m', num_workers: '4' }, pipelines: { a: { driver: 'memory' } } } };
  assert.equal(v(data), true, JSON.stringify(v.errors));
  const pool = (data.jobs as { pool: Record<string, unknown> }).pool;
  assert.equal(pool.num_workers, 4);
  assert.equal(data.version, '3');
  for (const bad of ['5x', '1h 30m', '', 'ms']) {
    const d = { jobs: { pool: { allocate_timeout: bad }, pipelines: { a: { driver: 'memory' } } } };
    assert.equal(v(d), false, bad);
    assert.ok(v.errors?.some((e) => e.keyword === 'format' && e.instancePath === '/jobs/pool/allocate_timeout'), bad);
  }
});
