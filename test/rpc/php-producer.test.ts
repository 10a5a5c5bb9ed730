// A PHP producer (test/fixtures/rpc/producer.php: goridge RPC frames with pack()/crc32(), protobuf bodies
// from classes protoc generated from schemas/proto/jobs.v1.proto, Debian's php-google-protobuf runtime)
// pushes jobs with priority, delay and headers through jobrunner's RPC server into memory and amqp091
// pipelines; the workers receive every one, counted in and out.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { brokerUrls } from '../drivers/conformance.js';
import { FIXTURE_WORKERS, ROOT, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
const PRODUCER = join(ROOT, 'test/fixtures/rpc/producer.php');

/** php, protoc and the protobuf runtime (scripts/install-example-runtimes.sh installs them); CI must have them */
function missing(): string | undefined {
  const need = [
    ['php', '/usr/bin/php'],
    ['protoc', '/usr/bin/protoc'],
    ['php-google-protobuf', '/usr/share/php/Google/Protobuf/Internal/Message.php'],
  ].filter(([, path]) => !existsSync(path as string));
  if (need.length === 0) return undefined;
  const what = need.map(([name]) => name).join(', ');
  if (process.env.CI === 'true') throw new Error(`${what} missing under CI=true: run scripts/install-example-runtimes.sh`);
  return `${what} not installed (scripts/install-example-runtimes.sh)`;
}
const skip = missing();

function recorded(file: string): Array<{ id: string; job: string; payload: unknown; headers: Record<string, string[]> }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

describe('a PHP producer pushes through the RPC server', { skip }, () => {
  const dirs: string[] = [];
  const daemons: TestDaemon[] = [];
  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function generated(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'jobrunner-php-proto-'));
    dirs.push(dir);
    await run('protoc', [`--proto_path=${join(ROOT, 'schemas/proto')}`, `--php_out=${dir}`, join(ROOT, 'schemas/proto/jobs.v1.proto')]);
    return dir;
  }

  async function scenario(pipelineYaml: string, sections: string, batch: boolean): Promise<void> {
    const record = join(tmpdir(), `php-rpc-${randomUUID()}.jsonl`);
    const d = await startDaemon(
      [
        'version: "3"',
        'rpc: { listen: "tcp://127.0.0.1:0" }',
        'http: { address: "127.0.0.1:0" }',
        `server: { command: ${JSON.stringify([process.execPath, join(FIXTURE_WORKERS, 'rpc-record.mjs')])}, env: { RECORD_FILE: ${JSON.stringify(record)} } }`,
        sections,
        'jobs:',
        '  consume: [p]',
        '  pool: { num_workers: 1 }',
        '  pipelines:',
        `    p: ${pipelineYaml}`,
      ].join('\n'),
    );
    daemons.push(d);
    await waitFor('the pipeline consuming', async () => (await d.daemon.listPipelines())[0]?.consuming);
    const jobs = Array.from({ length: 12 }, (_, i) => ({
      id: randomUUID(),
      job: 'App\\Jobs\\SendEmail',
      payload: JSON.stringify({ i, to: 'a@b.c' }),
      headers: { tenant: ['acme'], attempt: [String(i)] },
      priority: i % 3,
      delay: i === 11 ? 1 : 0,
    }));
    const { stdout } = await run('php', [PRODUCER, await generated(), JSON.stringify({ address: d.daemon.rpcAddress, pipeline: 'p', jobs, batch })], { timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('pushed ')).length, 12, stdout);
    assert.ok(lines.includes('pipelines p'), `jobs.List answered: ${stdout}`);
    assert.ok(lines.some((l) => l.startsWith('error E_PIPELINE_UNKNOWN')), `an unknown pipeline is an error frame PHP reads: ${stdout}`);
    assert.equal(lines.at(-1), 'ok');
    const got = await waitFor('12 jobs at the worker', () => (recorded(record).some((j) => j.id === jobs[11]?.id) ? recorded(record) : undefined), 30_000);
    assert.deepEqual(got.map((j) => j.id).sort(), jobs.map((j) => j.id).sort(), 'lost 0, duplicated 0');
    for (const j of jobs) {
      const w = got.find((g) => g.id === j.id);
      assert.equal(w?.job, 'App\\Jobs\\SendEmail');
      assert.deepEqual(w?.payload, JSON.parse(j.payload));
      assert.deepEqual(w?.headers.tenant, ['acme']);
      assert.deepEqual(w?.headers.attempt, j.headers.attempt);
    }
    rmSync(record, { force: true });
  }

  test('into a memory pipeline, one jobs.Push per job', () => scenario('{ driver: memory }', '', false));
  test('into a memory pipeline, one jobs.PushBatch', () => scenario('{ driver: memory }', '', true));
  for (const url of brokerUrls('AMQP091_URLS') ?? []) {
    test(`into an amqp091 pipeline on ${url}`, async () => {
      const q = `php-rpc-${randomUUID()}`;
      await scenario(`{ driver: amqp, config: { queue: ${q}, routing_key: ${q}, delete_queue_on_stop: true } }`, `amqp: { addr: ${JSON.stringify(url)} }`, false);
    });
  }
});
