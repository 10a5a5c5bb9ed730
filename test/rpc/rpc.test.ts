// RoadRunner's jobs RPC (goridge RPC, protobuf bodies) against a real daemon with real worker processes:
// pushes with priority, delay and headers into memory, amqp091 and amqp1 pipelines, batch push,
// pause/resume/list/stat, a pipeline declared at run time and destroyed, bad frames and unknown methods,
// and a worker pushing a follow-up through RR_RPC. Every test counts job ids in and out.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { brokerUrls } from '../drivers/conformance.js';
import { FIXTURE_WORKERS, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { CODEC_JSON, RpcClient, RpcError, proto } from '../helpers/rpc-client.js';
import { encodeParts } from '../../src/protocol/goridge/frame.js';
import { startRpcServer } from '../../src/rpc/server.js';
import type { JobrunnerError } from '../../src/shared/errors.js';
import { pino } from 'pino';

const RECORD = join(FIXTURE_WORKERS, 'rpc-record.mjs');

interface Recorded {
  id: string;
  job: string;
  pipeline: string;
  payload: unknown;
  headers: Record<string, string[]>;
}

function recorded(file: string): Recorded[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Recorded);
}

/** a daemon with an RPC server on a free port; `pipelines` is the YAML of jobs.pipelines, indented 4 */
async function daemonWith(pipelines: string, consume: string[], sections = ''): Promise<{ d: TestDaemon; rpc: RpcClient; file: string }> {
  const recordFile = join(process.env.TMPDIR ?? '/tmp', `rpc-record-${randomUUID()}.jsonl`);
  const d = await startDaemon(
    [
      'version: "3"',
      'rpc: { listen: "tcp://127.0.0.1:0" }',
      'http: { address: "127.0.0.1:0" }',
      `server: { command: ${JSON.stringify([process.execPath, RECORD])}, env: { RECORD_FILE: ${JSON.stringify(recordFile)} } }`,
      sections,
      'jobs:',
      `  consume: ${JSON.stringify(consume)}`,
      '  pool: { num_workers: 1 }',
      '  pipelines:',
      pipelines,
    ].join('\n'),
  );
  const address = d.daemon.rpcAddress;
  assert.ok(address, 'the daemon runs an RPC server');
  const rpc = await RpcClient.open(address);
  return { d, rpc, file: recordFile };
}

function job(id: string, pipeline: string, extra: { payload?: string; headers?: Record<string, string[]>; priority?: number; delay?: number } = {}): Record<string, unknown> {
  return {
    job: 'App\\Jobs\\SendEmail',
    id,
    payload: Buffer.from(extra.payload ?? JSON.stringify({ n: id })),
    headers: Object.fromEntries(Object.entries(extra.headers ?? {}).map(([k, v]) => [k, { value: v }])),
    options: { pipeline, priority: extra.priority ?? 0, delay: extra.delay ?? 0 },
  };
}

describe('RPC server on a memory pipeline', () => {
  let d: TestDaemon;
  let rpc: RpcClient;
  let file: string;
  after(async () => {
    rpc?.close();
    await d?.stop();
  });

  test('jobs.Push: payload, headers and name reach the worker; counted in and out', async () => {
    ({ d, rpc, file } = await daemonWith('    mem: { driver: memory, config: { priority: 10 } }\n    idle: { driver: memory }', ['mem']));
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const id of ids) await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'mem', { headers: { tenant: ['acme'], trace: ['a', 'b'] } }) }, 'Empty');
    const got = await waitFor('20 jobs at the worker', () => (recorded(file).length >= 20 ? recorded(file) : undefined));
    assert.deepEqual(got.map((j) => j.id).sort(), [...ids].sort(), 'every id in came out once');
    const one = got[0] as Recorded;
    assert.equal(one.job, 'App\\Jobs\\SendEmail');
    assert.deepEqual(one.payload, { n: one.id });
    assert.deepEqual(one.headers.tenant, ['acme']);
    assert.deepEqual(one.headers.trace, ['a', 'b']);
  });

  test('jobs.Push with a delay: the job waits at least that long', async () => {
    const id = randomUUID();
    const before = recorded(file).length;
    const sent = Date.now();
    await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'mem', { delay: 1 }) }, 'Empty');
    await waitFor('the delayed job', () => recorded(file).some((j) => j.id === id));
    assert.ok(Date.now() - sent >= 1000, 'not handed out before its delay');
    assert.equal(recorded(file).length, before + 1);
  });

  test('jobs.Push with priorities: a paused pipeline hands out the highest first', async () => {
    await rpc.call('jobs.Pause', 'Pipelines', { pipelines: ['mem'] }, 'Empty');
    const low = randomUUID();
    const high = randomUUID();
    await rpc.call('jobs.Push', 'PushRequest', { job: job(low, 'mem', { priority: 1 }) }, 'Empty');
    await rpc.call('jobs.Push', 'PushRequest', { job: job(high, 'mem', { priority: 50 }) }, 'Empty');
    const stat = await rpc.call('jobs.Stat', 'Empty', {}, 'Stats');
    const mem = stat.stats.find((s: { pipeline: string }) => s.pipeline === 'mem');
    assert.equal(mem.driver, 'memory');
    assert.equal(mem.ready, false, 'paused: not consuming');
    await rpc.call('jobs.Resume', 'Pipelines', { pipelines: ['mem'] }, 'Empty');
    const got = await waitFor('both jobs', () => {
      const r = recorded(file).map((j) => j.id);
      return r.includes(low) && r.includes(high) ? r : undefined;
    });
    assert.ok(got.indexOf(high) < got.indexOf(low), 'priority 50 before priority 1');
  });

  test('jobs.PushBatch: every job of the batch, answered after all are in', async () => {
    const before = recorded(file).length;
    const ids = Array.from({ length: 10 }, () => randomUUID());
    await rpc.call('jobs.PushBatch', 'PushBatchRequest', { jobs: ids.map((id) => job(id, 'mem')) }, 'Empty');
    const got = await waitFor('the batch', () => (recorded(file).length >= before + 10 ? recorded(file) : undefined));
    for (const id of ids) assert.equal(got.filter((j) => j.id === id).length, 1, `job ${id} once`);
  });

  test('jobs.List and jobs.Stat answer every pipeline', async () => {
    const list = await rpc.call('jobs.List', 'Empty', {}, 'Pipelines');
    assert.deepEqual([...list.pipelines].sort(), ['idle', 'mem']);
    const stat = await rpc.call('jobs.Stat', 'Empty', {}, 'Stats');
    assert.deepEqual(stat.stats.map((s: { pipeline: string }) => s.pipeline).sort(), ['idle', 'mem']);
    const mem = stat.stats.find((s: { pipeline: string }) => s.pipeline === 'mem');
    assert.equal(mem.ready, true);
    assert.equal(mem.priority, 10);
  });

  test('jobs.Declare: a pipeline declared at run time is consumed; jobs.Destroy removes it', async () => {
    await rpc.call('jobs.Declare', 'DeclareRequest', { pipeline: { name: 'declared', driver: 'memory', priority: '3', prefetch: '5' } }, 'Empty');
    const list = await rpc.call('jobs.List', 'Empty', {}, 'Pipelines');
    assert.ok(list.pipelines.includes('declared'));
    const id = randomUUID();
    await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'declared') }, 'Empty');
    const got = await waitFor('the job on the declared pipeline', () => recorded(file).find((j) => j.id === id));
    assert.equal(got.pipeline, 'declared');
    const stat = await rpc.call('jobs.Stat', 'Empty', {}, 'Stats');
    assert.equal(stat.stats.find((s: { pipeline: string }) => s.pipeline === 'declared').priority, 3, '"3" read as the number 3');
    const destroyed = await rpc.call('jobs.Destroy', 'Pipelines', { pipelines: ['declared'] }, 'Pipelines');
    assert.deepEqual(destroyed.pipelines, ['declared']);
    assert.ok(!(await rpc.call('jobs.List', 'Empty', {}, 'Pipelines')).pipelines.includes('declared'));
  });

  test('jobs.Declare with a bad value answers an error naming it', async () => {
    await assert.rejects(
      rpc.call('jobs.Declare', 'DeclareRequest', { pipeline: { name: 'bad', driver: 'memory', prefetch: 'many' } }, 'Empty'),
      (err: Error) => err instanceof RpcError && /E_CONFIG_SCHEMA/.test(err.message) && /prefetch/.test(err.message),
    );
    assert.ok(!(await rpc.call('jobs.List', 'Empty', {}, 'Pipelines')).pipelines.includes('bad'));
  });

  test('unknown methods, unknown pipelines and bodies that do not decode are errors; the connection goes on', async () => {
    await assert.rejects(rpc.call('jobs.Nope', 'Empty', {}, 'Empty'), (err: Error) => /E_RPC: unknown method "jobs.Nope"/.test(err.message));
    await assert.rejects(rpc.call('jobs.Push', 'PushRequest', { job: job(randomUUID(), 'missing') }, 'Empty'), (err: Error) => /E_PIPELINE_UNKNOWN/.test(err.message));
    await assert.rejects(rpc.callRaw('jobs.Push', Buffer.from([0xff, 0xff, 0xff])), (err: Error) => /E_RPC: the body is not a jobs.v1.PushRequest/.test(err.message));
    await assert.rejects(rpc.call('jobs.Pause', 'Pipelines', { pipelines: ['missing'] }, 'Empty'), (err: Error) => /E_PIPELINE_UNKNOWN/.test(err.message));
    // still serving on the same connection
    const list = await rpc.call('jobs.List', 'Empty', {}, 'Pipelines');
    assert.ok(list.pipelines.includes('mem'));
  });

  test('several calls in flight on one connection are each answered with their own sequence', async () => {
    const before = recorded(file).length;
    const ids = Array.from({ length: 25 }, () => randomUUID());
    const answers = await Promise.all(ids.map((id) => rpc.callRaw('jobs.Push', rpcProto('PushRequest', { job: job(id, 'mem') }))));
    assert.equal(answers.length, 25);
    for (const a of answers) assert.equal(a.method, 'jobs.Push');
    await waitFor('25 more jobs', () => recorded(file).length >= before + 25);
  });

  test('a JSON body (codec 0x08) works as RoadRunner\'s JSON codec does', async () => {
    const id = randomUUID();
    const body = JSON.stringify({ job: { job: 'Json', id, payload: Buffer.from('plain text').toString('base64'), options: { pipeline: 'mem' } } });
    const answer = await rpc.callRaw('jobs.Push', Buffer.from(body), CODEC_JSON);
    assert.equal(answer.frame.flags & CODEC_JSON, CODEC_JSON, 'answered in the caller\'s codec');
    const got = await waitFor('the JSON-pushed job', () => recorded(file).find((j) => j.id === id));
    assert.equal(got.payload, 'plain text', 'a body that is not JSON reaches the worker as text, byte for byte');
  });

  test('a bad frame (wrong CRC) closes that connection with an error; other connections are served', async () => {
    const address = d.daemon.rpcAddress as string;
    const bad = await RpcClient.open(address);
    const frame = encodeParts(0x80, [1, 9], [Buffer.from('jobs.List')], 9);
    frame[7] = (frame[7] as number) ^ 0xff;
    bad.writeRaw(frame);
    await waitFor('the connection to close', () => bad.socket.destroyed || bad.socket.readableEnded);
    assert.ok(bad.errors.some((e) => /CRC/.test(e)), `an error frame naming the CRC (got ${JSON.stringify(bad.errors)})`);
    bad.close();
    const other = await RpcClient.open(address);
    assert.ok((await other.call('jobs.List', 'Empty', {}, 'Pipelines')).pipelines.includes('mem'));
    other.close();
  });

  test('a worker pushes a follow-up through RR_RPC', async () => {
    const id = randomUUID();
    await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'mem', { payload: JSON.stringify({ follow_up: { pipeline: 'mem', job: 'FollowUp', payload: { from: id } } }) }) }, 'Empty');
    const follow = await waitFor('the follow-up', () => recorded(file).find((j) => j.id === `${id}-follow-up`));
    assert.equal(follow.job, 'FollowUp');
    assert.deepEqual(follow.payload, { from: id });
  });
});

function rpcProto(type: string, value: Record<string, unknown>): Uint8Array {
  const t = proto(type);
  return t.encode(t.fromObject(value)).finish();
}

for (const url of brokerUrls('AMQP091_URLS') ?? []) {
  describe(`RPC server on amqp091 ${url}`, () => {
    let d: TestDaemon;
    let rpc: RpcClient;
    let file: string;
    let conn: amqp.ChannelModel;
    const q = `rpc-${randomUUID()}`;
    const qIdle = `rpc-idle-${randomUUID()}`;
    after(async () => {
      rpc?.close();
      await d?.stop();
      if (conn) {
        const ch = await conn.createChannel();
        await ch.deleteQueue(q).catch(() => undefined);
        await ch.deleteQueue(qIdle).catch(() => undefined);
        await conn.close();
      }
    });

    test('jobs.Push: RoadRunner headers, priority and body on the broker; consumed jobs counted in and out', async () => {
      ({ d, rpc, file } = await daemonWith(
        [`    work: { driver: amqp, config: { queue: ${q}, routing_key: ${q}, priority: 10 } }`, `    idle: { driver: amqp, config: { queue: ${qIdle}, routing_key: ${qIdle}, priority: 10 } }`].join('\n'),
        ['work'],
        `amqp: { addr: ${JSON.stringify(url)} }`,
      ));
      await waitFor('both queues declared', async () => (await rpc.call('jobs.Stat', 'Empty', {}, 'Stats')).stats.find((s: { pipeline: string; ready: boolean }) => s.pipeline === 'work')?.ready);
      // push-only pipeline: read the message off the queue as a RoadRunner consumer would see it
      const idleId = randomUUID();
      await rpc.call('jobs.Push', 'PushRequest', { job: job(idleId, 'idle', { priority: 7, headers: { tenant: ['acme'] }, payload: '{"to":"a@b.c"}' }) }, 'Empty');
      conn = await amqp.connect(url);
      const ch = await conn.createChannel();
      const msg = await waitFor('the pushed message in its queue', async () => (await ch.get(qIdle, { noAck: true })) || undefined);
      assert.equal(msg.content.toString(), '{"to":"a@b.c"}', 'the body byte for byte');
      assert.equal(msg.properties.priority, 7);
      assert.equal(String(msg.properties.headers?.rr_id), idleId);
      assert.equal(String(msg.properties.headers?.rr_job), 'App\\Jobs\\SendEmail');
      assert.equal(Number(msg.properties.headers?.rr_priority), 7);
      assert.deepEqual(JSON.parse(String(msg.properties.headers?.rr_headers)).tenant, ['acme']);
      await ch.close();

      const ids = Array.from({ length: 30 }, () => randomUUID());
      await rpc.call('jobs.PushBatch', 'PushBatchRequest', { jobs: ids.slice(0, 15).map((id) => job(id, 'work', { headers: { k: ['v'] } })) }, 'Empty');
      for (const id of ids.slice(15)) await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'work', { delay: id === ids[29] ? 1 : 0 }) }, 'Empty');
      const got = await waitFor('30 jobs, the delayed one too', () => (recorded(file).some((j) => j.id === ids[29]) ? recorded(file) : undefined), 30_000);
      assert.deepEqual(got.map((j) => j.id).sort(), [...ids].sort(), 'lost 0, duplicated 0');
      assert.deepEqual(got.find((j) => j.id === ids[0])?.headers.k, ['v']);
    });
  });
}

for (const url of brokerUrls('AMQP1_URLS') ?? []) {
  describe(`RPC server on amqp1 ${url}`, () => {
    let d: TestDaemon;
    let rpc: RpcClient;
    let file: string;
    const q = `rpc1-${randomUUID()}`;
    after(async () => {
      rpc?.close();
      await d?.stop();
      const c = await amqp.connect(url).catch(() => undefined);
      if (c) {
        const ch = await c.createChannel();
        await ch.deleteQueue(q).catch(() => undefined);
        await c.close();
      }
    });

    test('jobs.Push and jobs.PushBatch into an amqp1 pipeline: payload and headers at the worker, counted in and out', async () => {
      const amqp091 = await amqp.connect(url);
      const ch = await amqp091.createChannel();
      await ch.assertQueue(q, { durable: true });
      await amqp091.close();
      ({ d, rpc, file } = await daemonWith(`    one: { driver: amqp1, config: { queue: ${q} } }`, ['one'], `amqp1: { addr: ${JSON.stringify(url)} }`));
      await waitFor('consuming', async () => (await rpc.call('jobs.Stat', 'Empty', {}, 'Stats')).stats[0]?.ready);
      const ids = Array.from({ length: 20 }, () => randomUUID());
      await rpc.call('jobs.PushBatch', 'PushBatchRequest', { jobs: ids.slice(0, 10).map((id) => job(id, 'one', { headers: { tenant: ['acme'] } })) }, 'Empty');
      for (const id of ids.slice(10)) await rpc.call('jobs.Push', 'PushRequest', { job: job(id, 'one', { priority: 5 }) }, 'Empty');
      const got = await waitFor('20 jobs', () => (new Set(recorded(file).map((j) => j.id)).size >= 20 ? recorded(file) : undefined), 30_000);
      assert.deepEqual(got.map((j) => j.id).sort(), [...ids].sort(), 'lost 0, duplicated 0');
      const first = got.find((j) => j.id === ids[0]) as Recorded;
      assert.deepEqual(first.headers.tenant, ['acme']);
      assert.deepEqual(first.payload, { n: ids[0] });
    });
  });
}

describe('RPC server listen rules', () => {
  const control = {} as never;
  const logger = pino({ level: 'silent' });

  test('an address reachable from other hosts is refused without allow_unauthenticated (E_RPC_LISTEN)', async () => {
    await assert.rejects(startRpcServer({ listen: 'tcp://0.0.0.0:0', allowUnauthenticated: false, control, logger }), (err: JobrunnerError) => err.code === 'E_RPC_LISTEN' && /allow_unauthenticated/.test(err.message));
    const s = await startRpcServer({ listen: 'tcp://0.0.0.0:0', allowUnauthenticated: true, control, logger });
    assert.match(s.address, /^tcp:\/\/0\.0\.0\.0:\d+$/);
    await s.close();
  });

  test('an address in use is one clear E_RPC_LISTEN error', async () => {
    const first = await startRpcServer({ listen: 'tcp://127.0.0.1:0', allowUnauthenticated: false, control, logger });
    await assert.rejects(startRpcServer({ listen: first.address, allowUnauthenticated: false, control, logger }), (err: JobrunnerError) => err.code === 'E_RPC_LISTEN' && /in use/.test(err.message));
    await first.close();
  });

  test('a unix socket works and is removed on close', async () => {
    const path = join(process.env.TMPDIR ?? '/tmp', `jobrunner-rpc-${randomUUID()}.sock`);
    const s = await startRpcServer({ listen: `unix://${path}`, allowUnauthenticated: false, control, logger });
    assert.equal(s.address, `unix://${path}`);
    assert.ok(existsSync(path));
    await s.close();
    assert.ok(!existsSync(path));
  });
});
