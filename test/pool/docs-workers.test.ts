// The minimal workers printed in docs/protocol.md are run through the pool, so the page cannot rot.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { testJob, recorder, stopAllPools, testPool, TIMEOUT } from './helpers.js';

after(stopAllPools);

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const block = (lang: string): string => {
  const code = doc.split('```' + lang + '\n')[1]?.split('```')[0];
  assert.ok(code, `docs/protocol.md has a ${lang} block`);
  return code;
};
const hasPython = spawnSync('python3', ['--version']).status === 0;

for (const [lang, file, interp] of [
  ['python', 'worker.py', 'python3'],
  ['js', 'worker.mjs', process.execPath],
] as const) {
  test(`the ${lang} worker of docs/protocol.md answers every job`, { ...TIMEOUT, skip: interp === 'python3' && !hasPython ? 'python3 not installed' : false }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobrunner-doc-worker-'));
    writeFileSync(join(dir, file), block(lang));
    const t = testPool('', { numWorkers: 2, maxConcurrency: 4 }, { command: [interp, join(dir, file)] });
    try {
      await t.pool.start();
      const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => t.pool.run(testJob({ i }), recorder())));
      assert.equal(outs.filter((o) => o.kind === 'ack').length, 50);
      await t.pool.stop(2000);
      assert.ok(t.exits.every((e) => e.reason === 'stop' && e.code === 0), JSON.stringify(t.exits));
    } finally {
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
