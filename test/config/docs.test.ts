// Docs that cannot drift: the key reference in docs/configuration.md is the schema's rendering and names
// every property path; docs/errors.md lists exactly the codes of ERROR_CODES; the shutdown budget of
// docs/kubernetes.md (and the grace periods of the examples) is src/shared/shutdown.ts's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configSchema } from '../../src/config/index.js';
import { driverConfigGroups, schemaKeys, withReference } from '../../src/config/reference.js';
import { DRIVERS } from '../../src/drivers/registry.js';
import { ERROR_CODES } from '../../src/shared/errors.js';
import { SHUTDOWN_ESCALATION_MS, SHUTDOWN_PHASES } from '../../src/shared/shutdown.js';

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

test('the shutdown budget in docs/kubernetes.md is the code\'s, and the grace periods of the examples cover it', () => {
  const doc = readFileSync('docs/kubernetes.md', 'utf8');
  const escalationS = SHUTDOWN_ESCALATION_MS / 1000;
  assert.match(doc, new RegExp(`longest \`destroy_timeout\`\\s+of its pipelines plus \\*\\*${escalationS} s\\*\\*`), 'the promise names the code\'s escalation');
  assert.match(doc, new RegExp(`\\*\\*\`destroy_timeout\` \\+ ${escalationS} s \\+ the time your application`), 'the grace-period formula names it');
  // the budget table: each phase as src/shared/shutdown.ts has it, and the rest up to the escalation
  const row = (phase: string): number => {
    const m = new RegExp(`^\\| ${phase} \\| (\\d+) s \\|`, 'm').exec(doc);
    assert.ok(m, `docs/kubernetes.md's budget table has no "${phase}" row`);
    return Number(m[1]) * 1000;
  };
  assert.equal(row('`stop`'), SHUTDOWN_PHASES.stopGraceMs);
  assert.equal(row('SIGTERM'), SHUTDOWN_PHASES.termGraceMs);
  assert.equal(row('SIGKILL'), SHUTDOWN_PHASES.killWaitMs);
  assert.equal(row('close'), SHUTDOWN_PHASES.closeMs);
  const phases = SHUTDOWN_PHASES.stopGraceMs + SHUTDOWN_PHASES.termGraceMs + SHUTDOWN_PHASES.killWaitMs + SHUTDOWN_PHASES.closeMs;
  assert.equal(row('the rest'), SHUTDOWN_ESCALATION_MS - phases, 'the rows add up to the escalation');
  // the Deployment's grace period covers destroy_timeout + the escalation, with a margin
  const destroyS = Number(/destroy_timeout: (\d+)s/.exec(doc)?.[1]);
  const graceS = Number(/terminationGracePeriodSeconds: (\d+)/.exec(doc)?.[1]);
  assert.ok(graceS > destroyS + escalationS, `terminationGracePeriodSeconds ${graceS} must exceed destroy_timeout ${destroyS} + ${escalationS}`);
  // docker: `docker stop -t 75` for the default 60 s; the compose file's grace period against its config
  const docker = readFileSync('docs/docker.md', 'utf8');
  const stopT = Number(/docker stop -t (\d+)` or\s+`stop_grace_period: \1s` in compose for the default 60 s/.exec(docker)?.[1]);
  assert.ok(stopT > 60 + escalationS, `docker.md's docker stop -t ${stopT} must exceed 60 + ${escalationS}`);
  const composeGrace = Number(/stop_grace_period: (\d+)s/.exec(readFileSync('docker-compose.yml', 'utf8'))?.[1]);
  const composeDestroy = Number(/destroy_timeout: (\d+)s/.exec(readFileSync('config/compose.yaml', 'utf8'))?.[1]);
  assert.ok(composeGrace > composeDestroy + escalationS, `docker-compose.yml's stop_grace_period ${composeGrace}s must exceed config/compose.yaml's destroy_timeout ${composeDestroy}s + ${escalationS}s`);
});
