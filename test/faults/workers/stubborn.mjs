// Fault fixture: a worker that takes jobs and never answers, and ignores SIGTERM, the stop frame and the
// end of stdin: only SIGKILL ends it. Records each job it receives in SCRIPTED_RECORD ("<id> <attempt>").
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

process.on('SIGTERM', () => process.stderr.write('stubborn: SIGTERM ignored\n'));
setInterval(() => {}, 1000);
const record = process.env.SCRIPTED_RECORD;
createInterface({ input: process.stdin }).on('line', (line) => {
  const frame = JSON.parse(line);
  if (frame.type === 'job' && record) appendFileSync(record, `${frame.id} ${frame.attempt}\n`);
});
