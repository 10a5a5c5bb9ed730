// The suite-wide secret check of scripts/run-tests.mjs: in a folder of collected output
// (test/helpers/output-log.ts writes output-<pid>.log files and secrets.txt), every line that holds a
// registered secret, as "file:line: secret abcd… in: <the line, the secret masked>".
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function findSecrets(dir) {
  const list = join(dir, 'secrets.txt');
  if (!existsSync(list)) return [];
  const secrets = [...new Set(readFileSync(list, 'utf8').split('\n').filter((s) => s.length >= 8))];
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.startsWith('output-')) continue;
    const lines = readFileSync(join(dir, name), 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const s of secrets) if (line.includes(s)) found.push(`${name}:${i + 1}: secret ${s.slice(0, 4)}… in: ${line.slice(0, 160).split(s).join('***')}`);
    });
  }
  return found;
}
