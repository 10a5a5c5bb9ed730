// The suite-wide secret check (hardening case 9): scripts/find-secrets.mjs finds a registered secret,
// plain or URL-encoded, in collected output, and passes clean output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error: a plain .mjs script without types
import { findSecrets } from '../../scripts/find-secrets.mjs';

test('case 9: the suite-wide check finds a secret (plain or URL-encoded) in any collected line, and passes clean output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-find-secrets-'));
  try {
    const secret = 'Ab3/Kx9+Qw7=Zp1';
    writeFileSync(join(dir, 'secrets.txt'), `${secret}\n${encodeURIComponent(secret)}\n`);
    writeFileSync(join(dir, 'output-1.log'), '{"msg":"connect amqps://k:***@ns/ failed"}\nplain line\n');
    assert.deepEqual(findSecrets(dir), []);
    writeFileSync(join(dir, 'output-2.log'), `ok\n{"msg":"connect amqps://k:${encodeURIComponent(secret)}@ns/"}\n`);
    const found = (findSecrets as (d: string) => string[])(dir);
    assert.equal(found.length, 1);
    assert.match(found[0]!, /^output-2\.log:2: secret Ab3%… in: .*k:\*\*\*@ns/);
    assert.ok(!found[0]!.includes('Kx9'), 'the report masks the secret');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
