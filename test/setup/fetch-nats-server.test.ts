// scripts/fetch-nats-server.sh, which fetches the nats-server 2.12+ of the message-scheduling tests: valid
// bash; a cached binary is printed without the network (newest first, older than 2.12 ignored); with no
// archive to reach it fails with a line that says so. (The download itself runs in .ci/run.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const script = new URL('../../scripts/fetch-nats-server.sh', import.meta.url).pathname;
// nothing listens there: a run that reached for the network would fail
const offline = { DEBIAN_MIRROR: 'http://127.0.0.1:9' };

function fakeServer(cache: string, version: string): string {
  const dir = join(cache, `nats-server-${version}`);
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'nats-server');
  writeFileSync(bin, `#!/bin/sh\necho "nats-server: v${version}"\n`);
  chmodSync(bin, 0o755);
  return bin;
}

test('fetch-nats-server.sh is valid bash', () => {
  execFileSync('bash', ['-n', script]);
});

test('a cached nats-server 2.12+ is printed without the network, the newest first', () => {
  const cache = mkdtempSync(join(tmpdir(), 'jobrunner-fetch-nats-'));
  try {
    fakeServer(cache, '2.9.10');
    fakeServer(cache, '2.12.4');
    const newest = fakeServer(cache, '2.15.1');
    const out = execFileSync(script, { env: { ...process.env, ...offline, JOBRUNNER_CACHE_DIR: cache }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(out, `${newest}\n`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('nothing cached (an old one does not count) and no archive: fails, saying so', () => {
  const cache = mkdtempSync(join(tmpdir(), 'jobrunner-fetch-nats-'));
  try {
    fakeServer(cache, '2.9.10');
    const r = spawnSync(script, { env: { ...process.env, ...offline, JOBRUNNER_CACHE_DIR: cache }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /fetch-nats-server: no nats-server in http:\/\/127\.0\.0\.1:9 \(suites: sid forky, \w+\)/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
