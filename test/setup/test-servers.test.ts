// scripts/test-servers.sh, the repository's own way to start the test servers: on a machine where they
// run already it is idempotent (leaves them alone) and prints the exports the tests read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const script = new URL('../../scripts/test-servers.sh', import.meta.url).pathname;
const root = process.getuid?.() === 0;
const natsUp = (process.env['NATS_URLS'] ?? '').includes('127.0.0.1:4222');

test('test-servers.sh is valid bash and refuses to run without root', () => {
  execFileSync('bash', ['-n', script]);
  if (root) return;
  assert.throws(() => execFileSync(script, { stdio: 'pipe' }), /needs root/);
});

test('test-servers.sh leaves a running server alone and prints the exports', { skip: root && natsUp ? false : 'needs root and NATS on 127.0.0.1:4222' }, () => {
  const out = execFileSync(script, { env: { ...process.env, SERVERS: 'nats' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  assert.match(out, /^export NATS_URLS='nats:\/\/127\.0\.0\.1:4222'$/m);
  assert.match(out, /^export AMQP091_URLS=''$/m);
});

test('the compose file for Docker users offers the same ports as the script', () => {
  const compose = parse(readFileSync(new URL('../servers.compose.yaml', import.meta.url), 'utf8')) as { services: Record<string, { ports: string[] }> };
  const ports = Object.values(compose.services).flatMap((s) => s.ports.filter((p) => !p.includes(':156')));
  assert.deepEqual(ports.sort(), ['127.0.0.1:4222:4222', '127.0.0.1:5672:5672', '127.0.0.1:5673:5672']);
});
