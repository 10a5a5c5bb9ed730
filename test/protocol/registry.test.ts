// The protocols `pool.protocol` accepts are exactly the registry's, and each one keeps the codec contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PROTOCOLS, protocolNamed } from '../../src/protocol/registry.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/config.schema.json', import.meta.url), 'utf8')) as {
  definitions: { pool: { properties: { protocol: { enum: string[]; default: string } } } };
};

test('the config schema lists exactly the registered protocols, and its default is one of them', () => {
  const prop = schema.definitions.pool.properties.protocol;
  assert.deepEqual([...prop.enum].sort(), Object.keys(PROTOCOLS).sort());
  assert.ok(protocolNamed(prop.default), `default ${prop.default} is registered`);
});

test('every protocol is registered under its own name; unknown names give undefined', () => {
  for (const [name, p] of Object.entries(PROTOCOLS)) assert.equal(p.name, name);
  assert.equal(protocolNamed('nope'), undefined);
  assert.equal(protocolNamed('toString'), undefined, 'no prototype names');
});
