#!/usr/bin/env node
// Runs every test file under test/ (TypeScript, through tsx) with node's own test runner.
// Node 20's --test takes no glob, so the files are found here. Extra arguments filter by path substring:
//   node scripts/run-tests.mjs config pool     -> only test files whose path contains "config" or "pool"
// After the run, every line the daemons, pools and CLIs under test printed is searched for every secret the
// tests registered (test/helpers/output-log.ts): one found fails the run.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { findSecrets } from './find-secrets.mjs';

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('test').sort().filter((f) => filters.length === 0 || filters.some((s) => relative('.', f).includes(s)));
if (files.length === 0) {
  console.error(`run-tests: no test file matches ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// everything the daemons, pools and CLIs under test print is collected here (test/helpers/output-log.ts),
// with the secrets the tests used; after the run no secret may appear anywhere in it
const outputDir = mkdtempSync(join(tmpdir(), 'jobrunner-test-output-'));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TEST_OUTPUT_CHECK_DIR: outputDir },
});
const leaks = findSecrets(outputDir);
if (leaks.length > 0) {
  console.error(`\nrun-tests: a secret a test used appears in what the suite printed (kept in ${outputDir}):`);
  for (const l of leaks.slice(0, 20)) console.error(`  ${l}`);
  process.exit(1);
}
rmSync(outputDir, { recursive: true, force: true });
process.exit(r.status ?? 1);
