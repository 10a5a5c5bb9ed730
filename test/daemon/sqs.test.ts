// The daemon end to end on the sqs driver against an SQS emulator (fauxqs on 127.0.0.1, in this test's
// process), not AWS, with real worker processes (test/fixtures/workers/scripted.mjs): retries by
// ChangeMessageVisibility through the retry policy, give-up into the queue's redrive queue, a dead-letter
// pipeline, /pipelines counts, and kill -9 of the daemon (the built CLI) mid-job. Every test counts ids.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueUrlCommand, SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { FIXTURE_WORKERS, httpJson, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { CLI, freePort, readRecord, spawnServe, within } from '../helpers/faults.js';
import { EMULATOR, startSqsEmulator, type SqsEmulator } from '../helpers/sqs-emulator.js';

const SCRIPTED = join(FIXTURE_WORKERS, 'scripted.mjs');
/** the emulator takes any credentials: this one must never show in a log line or an output */
const SECRET = 'Zq7-SqsSecret-NeverLogged-4x';
const T = { timeout: 90_000 };
const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);

let emu: SqsEmulator;
let dir: string;
before(async () => {
  emu = await startSqsEmulator();
  dir = mkdtempSync(join(tmpdir(), 'jobrunner-sqs-daemon-'));
});
after(async () => {
  await emu.cleanup();
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
});

function q(prefix: string): string {
  const name = `${prefix}-${randomUUID().slice(0, 8)}`;
  emu.track(name);
  return name;
}

/** a daemon config: `pipelines` is YAML for jobs.pipelines (indented 4) */
function yaml(record: string, pipelines: string, consume: string[], extra = ''): string {
  return `version: "3"
server:
  command: ["${process.execPath}", "${SCRIPTED}"]
  env: { SCRIPTED_RECORD: "${record}", AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" }
sqs: { endpoint: "${emu.endpoint}", key: AKIATESTKEY, secret: "${SECRET}", session_token: "${SECRET}", region: us-east-1 }
logs: { level: debug }
${extra.includes('http:') ? extra : `http: { address: "127.0.0.1:0" }\n${extra}`}
jobs:
  consume: ${JSON.stringify(consume)}
  pool: { num_workers: 2, destroy_timeout: 5s }
  pipelines:
${pipelines}`;
}

/** runs the built CLI to its end */
function runCli(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

/** the daemon declares its queues after start() resolves: wait until they exist */
async function declared(...queues: string[]): Promise<void> {
  for (const queue of queues) await waitFor(`queue ${queue} declared`, () => urlOf(queue).then(() => true, () => false));
}

async function urlOf(queue: string): Promise<string> {
  return (await emu.client.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl as string;
}

/** jobs as a RoadRunner producer sends them; returns [job id, SQS message id] pairs */
async function send(queue: string, payloads: unknown[]): Promise<Array<{ id: string; messageId: string }>> {
  const url = await urlOf(queue);
  const out: Array<{ id: string; messageId: string }> = [];
  for (let i = 0; i < payloads.length; i += 10) {
    const chunk = payloads.slice(i, i + 10).map((p) => ({ id: randomUUID(), p }));
    const r = await emu.client.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: chunk.map((c, k) => ({
          Id: String(k),
          MessageBody: JSON.stringify(c.p),
          MessageAttributes: {
            rr_id: { DataType: 'String', StringValue: c.id },
            rr_job: { DataType: 'String', StringValue: 'Test' },
            'content-type': { DataType: 'String', StringValue: 'application/json' },
          },
        })),
      }),
    );
    assert.equal(r.Failed?.length ?? 0, 0);
    for (const s of r.Successful ?? []) out.push({ id: chunk[Number(s.Id)]!.id, messageId: s.MessageId as string });
  }
  return out;
}

describe(`daemon on the sqs driver (${EMULATOR})`, { concurrency: false }, () => {
  const daemons: TestDaemon[] = [];
  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
  });

  test(`retry policy by ChangeMessageVisibility: attempts 1..max on the same SQS message, then SQS's redrive queue takes it (${EMULATOR})`, T, async () => {
    const work = q('d-retry');
    const dlq = q('d-retry-dlq');
    const record = join(dir, `${work}.record`);
    await emu.createQueue(dlq);
    const d = await startDaemon(
      yaml(
        record,
        `    work:
      driver: sqs
      retry: { max_attempts: 3, backoff: { initial: 1s, max: 1s, jitter: 0 } }
      config:
        queue: ${work}
        wait_time_seconds: 1
        attributes: { RedrivePolicy: { deadLetterTargetArn: "${emu.arn(dlq)}", maxReceiveCount: 10 } }
`,
        ['work'],
      ),
    );
    daemons.push(d);
    await declared(work);
    const [sent] = await send(work, [{ action: 'nack', error: 'always fails' }]);
    let dead: Awaited<ReturnType<SqsEmulator['receive']>> = [];
    await waitFor('the job in the redrive queue', async () => (dead = await emu.receive(dlq, 10, 1)).length > 0, 60_000);
    const attempts = readRecord(record).filter((r) => r.id === sent!.id).map((r) => r.attempt);
    assert.deepEqual(attempts, [1, 2, 3], 'three attempts, then given up on without reaching a worker again');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.MessageId, sent!.messageId, 'the same SQS message throughout (never re-published)');
    assert.equal(dead[0]?.MessageAttributes?.['rr_id']?.StringValue, sent!.id);
    assert.equal(dead[0]?.Body, '{"action":"nack","error":"always fails"}');
    assert.ok(d.logs.some((l) => l.msg.includes('job given up on goes to the queue\'s dead-letter queue')), 'says at start where given-up jobs go');
    await d.stop();
    assert.ok(!JSON.stringify(d.logs).includes(SECRET), 'the secret is in no log line');
  });

  test(`give-up to dead_letter.pipeline: published there (confirmed), then deleted; the reason travels in the headers (${EMULATOR})`, T, async () => {
    const work = q('d-dlp');
    const dead = q('d-dlp-dead');
    const record = join(dir, `${work}.record`);
    const d = await startDaemon(
      yaml(
        record,
        `    work:
      driver: sqs
      dead_letter: { pipeline: dead }
      config: { queue: ${work}, wait_time_seconds: 1 }
    dead:
      driver: sqs
      config: { queue: ${dead} }
`,
        ['work'],
      ),
    );
    daemons.push(d);
    await declared(work, dead);
    const sent = await send(work, [{ action: 'nack', requeue: false, error: 'poison' }, { action: 'ack' }]);
    let got: Awaited<ReturnType<SqsEmulator['receive']>> = [];
    await waitFor('the dead letter', async () => (got = await emu.receive(dead, 10, 1)).length > 0, 30_000);
    await waitFor('the work queue empty', async () => (await emu.attributes(work))['ApproximateNumberOfMessagesNotVisible'] === '0' && (await emu.attributes(work))['ApproximateNumberOfMessages'] === '0');
    assert.equal(got.length, 1);
    const a = got[0]!.MessageAttributes ?? {};
    assert.equal(a['rr_id']?.StringValue, sent[0]!.id);
    const headers = JSON.parse(Buffer.from(a['rr_headers']!.BinaryValue!).toString()) as Record<string, string[]>;
    assert.match(headers['x-jobrunner-dead-reason']?.[0] ?? '', /poison/);
    assert.deepEqual(headers['x-jobrunner-dead-pipeline'], ['work']);
    assert.deepEqual(readRecord(record).map((r) => r.id).sort(), sent.map((s) => s.id).sort());
    await d.stop();
  });

  test(`/pipelines shows the queue's visible, delayed and in-flight counts (${EMULATOR})`, T, async () => {
    const work = q('d-counts');
    const d = await startDaemon(yaml(join(dir, `${work}.record`), `    work:\n      driver: sqs\n      config: { queue: ${work} }\n`, [], 'http: { address: "127.0.0.1:0" }'));
    daemons.push(d);
    await declared(work);
    const url = await urlOf(work);
    await emu.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'now' }));
    await emu.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'later', DelaySeconds: 60 }));
    const res = await httpJson('GET', `${d.url}/pipelines`);
    assert.equal(res.status, 200);
    let row = (res.body as Array<{ pipeline: string; driver: string; ready: number; delayed: number; reserved: number }>).find((p) => p.pipeline === 'work');
    assert.deepEqual([row?.driver, row?.ready, row?.delayed, row?.reserved], ['sqs', 1, 1, 0]);
    // a message another consumer holds is in flight: SQS's NotVisible count
    assert.equal((await emu.receive(work, 1, 1)).length, 1);
    row = ((await httpJson('GET', `${d.url}/pipelines`)).body as Array<typeof row & object>).find((p) => p?.pipeline === 'work');
    assert.deepEqual([row?.ready, row?.delayed, row?.reserved], [0, 1, 1]);
    await d.stop();
  });

  test(`jobrunner push publishes through the sqs driver, confirmed, in RoadRunner's format, delay included (${EMULATOR})`, { ...T, skip: cliMissing }, async () => {
    const work = q('d-push');
    const file = join(dir, `${work}.yaml`);
    writeFileSync(file, yaml(join(dir, `${work}.record`), `    work:\n      driver: sqs\n      config: { queue: ${work} }\n`, []));
    const at = Date.now();
    const push = await within(
      runCli(['push', '-c', file, 'work', 'SendEmail', '{"to":"a@b.c"}', '--header', 'tenant=acme', '--delay', '2', '--id', 'push-1', '--priority', '4']),
      30_000,
      'jobrunner push exits',
    );
    assert.equal(push.code, 0, push.output);
    assert.ok(!push.output.includes(SECRET));
    assert.equal((await emu.receive(work, 10, 0)).length, 0, 'delayed: not visible at once');
    let got: Awaited<ReturnType<SqsEmulator['receive']>> = [];
    await waitFor('the pushed job', async () => (got = await emu.receive(work, 10, 1)).length > 0, 15_000);
    assert.ok(Date.now() - at >= 2000);
    const a = got[0]!.MessageAttributes ?? {};
    assert.deepEqual(
      [a['rr_id']?.StringValue, a['rr_job']?.StringValue, a['rr_delay']?.StringValue, a['rr_priority']?.StringValue, got[0]!.Body],
      ['push-1', 'SendEmail', '2', '4', '{"to":"a@b.c"}'],
    );
    assert.deepEqual(JSON.parse(Buffer.from(a['rr_headers']!.BinaryValue!).toString()), { tenant: ['acme'] });
  });

  test(`kill -9 of the daemon mid-job: the held jobs come back after the visibility timeout, 0 lost (${EMULATOR})`, { ...T, skip: cliMissing }, async (tc) => {
    const work = q('d-kill');
    const collector = q('d-kill-done');
    const record = join(dir, `${work}.record`);
    const file = join(dir, `${work}.yaml`);
    const port = await freePort();
    writeFileSync(
      file,
      yaml(
        record,
        `    work:
      driver: sqs
      config: { queue: ${work}, visibility_timeout: 3, wait_time_seconds: 1, prefetch: 10 }
    echo:
      driver: sqs
      config: { queue: ${collector} }
`,
        ['work'],
        `http: { address: "127.0.0.1:${port}" }`,
      ).replace('logs: { level: debug }', 'logs: { level: info }'),
    );
    await emu.createQueue(work, { VisibilityTimeout: '3' });
    await emu.createQueue(collector);
    const N = 30;
    // each job sleeps, then publishes its n to the collector (confirmed) and is acked
    const sent = await send(work, Array.from({ length: N }, (_, i) => ({ action: 'sleep', ms: 400, then: 'echo', n: `n${i}` })));
    const nOf = new Map(sent.map((s, i) => [s.id, `n${i}`]));
    const first = spawnServe(file, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    const collected = new Set<string>();
    const drain = async (): Promise<number> => {
      for (const m of await emu.receive(collector, 10, 0)) {
        const n = (JSON.parse(m.Body ?? '{}') as { n?: string }).n;
        if (n !== undefined) collected.add(n);
        await emu.client.send(new (await import('@aws-sdk/client-sqs')).DeleteMessageCommand({ QueueUrl: await urlOf(collector), ReceiptHandle: m.ReceiptHandle }));
      }
      return collected.size;
    };
    let inFlightAtKill: string[] = [];
    try {
      await waitFor('some jobs done', async () => (await drain()) >= 4, 30_000, 50).catch((err: Error) => {
        throw new Error(`${err.message}; daemon output: ${first.output().slice(-3000)}`);
      });
      // jobs a worker has started and not finished: received, recorded, not collected
      first.kill();
      await within(first.exited, 10_000, 'the killed daemon exits');
      await drain();
      const started = new Set(readRecord(record).map((r) => r.id));
      inFlightAtKill = [...started].filter((id) => !collected.has(nOf.get(id) as string));
    } finally {
      first.kill();
    }
    assert.ok(inFlightAtKill.length > 0, 'the kill came while jobs were running');
    const second = spawnServe(file, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
    try {
      await waitFor('every job done', async () => (await drain()) === N, 60_000, 100).catch((err: Error) => {
        throw new Error(`${err.message} (${collected.size}/${N}); daemon output: ${second.output().slice(-3000)}`);
      });
      second.child.kill('SIGTERM');
      const exit = await within(second.exited, 20_000, 'the restarted daemon exits on SIGTERM');
      assert.equal(exit.code, 0, second.output().slice(-2000));
    } finally {
      second.kill();
    }
    assert.ok(!first.output().includes(SECRET) && !second.output().includes(SECRET), 'the secret is in no output');
    const lost = sent.filter((s) => !collected.has(nOf.get(s.id) as string));
    const deliveries = readRecord(record);
    // a job running at the kill came back (after its visibility timeout: nothing else hands it out again)
    const again = deliveries.filter((r) => inFlightAtKill.includes(r.id) && r.attempt >= 2);
    tc.diagnostic(`published=${N} done=${collected.size} lost=${lost.length} in flight at the kill=${inFlightAtKill.length} deliveries=${deliveries.length}`);
    assert.equal(lost.length, 0, `lost: ${lost.map((s) => s.id).join(', ')}`);
    assert.ok(again.length >= 1, 'the jobs held at the kill came back as attempt 2');
    const attrs = await emu.attributes(work);
    assert.deepEqual([attrs['ApproximateNumberOfMessages'], attrs['ApproximateNumberOfMessagesNotVisible']], ['0', '0']);
  });
});
