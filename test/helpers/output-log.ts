// Everything the daemons, pools and CLIs under test print, collected for one check after the whole suite
// (scripts/run-tests.mjs): no secret a test used may appear in any of it. scripts/run-tests.mjs sets
// TEST_OUTPUT_CHECK_DIR; the helpers that capture output (startDaemon, testPool, spawnServe, the CLI
// runners) append to a file per process there, and tests register the secrets they use. Without the
// variable (a test file run on its own) nothing is written.

import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = process.env['TEST_OUTPUT_CHECK_DIR'];

/** appends printed text (log lines, CLI output) to this process's file */
export function recordOutput(text: string): void {
  if (DIR === undefined || DIR === '' || text === '') return;
  try {
    appendFileSync(join(DIR, `output-${process.pid}.log`), text.endsWith('\n') ? text : `${text}\n`);
  } catch {
    // the folder is gone (the run is over): nothing to check against
  }
}

/** secrets this test uses: none may appear in anything the suite prints (URL-encoded forms included) */
export function registerSecrets(...secrets: string[]): void {
  if (DIR === undefined || DIR === '') return;
  const all = new Set<string>();
  for (const s of secrets) for (const v of [s, encodeURIComponent(s)]) if (v.length >= 8) all.add(v);
  try {
    appendFileSync(join(DIR, 'secrets.txt'), [...all].map((s) => `${s}\n`).join(''));
  } catch {
    // as above
  }
}
