// Configuration hardening (cases 5, 9, 10 and 11 of the hostile-input review), through the built CLI as
// users meet them: a file too large is E_CONFIG_READ, an alias bomb E_CONFIG_YAML with file:line:col, an
// address that is not a URL is refused with a hint to URL-encode (and never printed), and `validate`
// refuses what `serve` would refuse. Exit 2 every time, never E_INTERNAL.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig, formatProblem } from '../../src/config/index.js';
import { ROOT } from '../helpers/daemon.js';
import { recordOutput, registerSecrets } from '../helpers/output-log.js';

const CLI = join(ROOT, 'dist/cli/main.js');
const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);

function validate(path: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, 'validate', '-c', path], { cwd: ROOT, env: { ...process.env, JOBRUNNER_CONFIG: '' }, encoding: 'utf8', timeout: 30_000 });
  recordOutput(r.stdout + r.stderr);
  return { code: r.status, out: r.stdout + r.stderr };
}

function withFile(name: string, text: string | Buffer, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-harden-cfg-'));
  try {
    const path = join(dir, name);
    writeFileSync(path, text);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BASE = ['version: "3"', 'server: { command: "true" }', 'http: { address: "127.0.0.1:0" }'];

test('case 5: a configuration larger than 4 MB (or /dev/zero) is E_CONFIG_READ, read no further', { skip: cliMissing }, () => {
  const zero = validate('/dev/zero');
  assert.equal(zero.code, 2, zero.out);
  assert.match(zero.out, /cannot read the configuration: the file is larger than 4 MB/);
  withFile('big.yaml', Buffer.alloc(5 * 1024 * 1024, '# a comment line\n'), (path) => {
    const problems = checkConfig(path, {}).problems;
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.code, 'E_CONFIG_READ');
  });
});

test('case 10: a YAML alias bomb is E_CONFIG_YAML at file:line:col, exit 2', { skip: cliMissing }, () => {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) {
    const n = String.fromCharCode(97 + i);
    const prev = String.fromCharCode(96 + i);
    lines.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  withFile('bomb.yaml', lines.join('\n') + '\n', (path) => {
    const r = validate(path);
    assert.equal(r.code, 2, r.out);
    assert.ok(r.out.includes(`${path}:2:8 YAML aliases expand too far`), r.out);
    assert.doesNotMatch(r.out, /E_INTERNAL/);
  });
});

test('case 9: an address that is not a URL (a SAS key not URL-encoded) is refused with a hint, the key never printed', { skip: cliMissing }, () => {
  const key = 'Ab3/Kx9+Qw7=Zp1Lm2Rt5SasKey';
  registerSecrets(key, 'Zq9SecretPw7731');
  const yaml = [...BASE, `amqp1: { addr: "amqps://RootManageSharedAccessKey:${key}@ns.servicebus.windows.net:5671/" }`, 'jobs:', '  pipelines:', '    work: { driver: amqp1, config: { queue: q } }', ''].join('\n');
  withFile('sb.yaml', yaml, (path) => {
    const r = validate(path);
    assert.equal(r.code, 2, r.out);
    assert.ok(r.out.includes(`${path}:4:16 amqp1.addr: is not a valid URL: a password or key holding / + = @ : or % must be URL-encoded (/ as %2F, + as %2B, = as %3D`), r.out);
    for (const part of ['Kx9', 'Qw7', 'SasKey']) assert.ok(!r.out.includes(part), `the key is printed: ${r.out}`);
  });
  // URL-encoded, the same key is fine
  const good = [...BASE, `amqp1: { addr: "amqps://RootManageSharedAccessKey:${encodeURIComponent(key)}@ns.servicebus.windows.net:5671/" }`, 'jobs:', '  pipelines:', '    work: { driver: amqp1, config: { queue: q } }', ''].join('\n');
  withFile('sb.yaml', good, (path) => assert.deepEqual(checkConfig(path, {}).problems.map(formatProblem), []));
  // a password holding @ not encoded
  const at = [...BASE, 'amqp: { addr: "amqp://guest:Zq9@Zq9SecretPw7731@127.0.0.1:5672/" }', 'jobs:', '  pipelines:', '    work: { driver: amqp091, config: { queue: q } }', ''].join('\n');
  withFile('at.yaml', at, (path) => {
    const lines = checkConfig(path, {}).problems.map(formatProblem);
    assert.deepEqual(lines, [`${path}:4:15 amqp.addr: holds more than one @ before the host: a password holding @ must be URL-encoded as %40`]);
  });
});

test('case 11: validate refuses what serve refuses: prefetch 70000, http.address localhost:abc, an unterminated ${VAR, num_workers 1000000', { skip: cliMissing }, () => {
  const yaml = [
    'version: "3"',
    'server: { command: "echo ${VAR" }',
    'http: { address: "localhost:abc" }',
    'amqp: { addr: "amqp://127.0.0.1:5672/" }',
    'jobs:',
    '  pool: { num_workers: 1000000 }',
    '  pipelines:',
    '    work: { driver: amqp091, config: { queue: q, prefetch: 70000 } }',
    '',
  ].join('\n');
  withFile('jobs.yaml', yaml, (path) => {
    const r = validate(path);
    assert.equal(r.code, 2, r.out);
    const expected = [
      `${path}:2:26 server.command: \`\${\` starts no valid reference: write \${VAR} or \${VAR:-default} (a name of letters, digits and _, closed by \`}\`), or $\${ for a literal \${`,
      `${path}:3:18 http.address: "localhost:abc" is not host:port (a port from 0 to 65535), \`off\` or empty`,
      `${path}:6:24 jobs.pool.num_workers: must be <= 1024, not \`1000000\``,
      `${path}:8:60 jobs.pipelines.work.config.prefetch: must be <= 65535, not \`70000\``,
    ];
    for (const line of expected) assert.ok(r.out.includes(line), `missing: ${line}\n${r.out}`);
  });
});
