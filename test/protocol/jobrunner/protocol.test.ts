// The jobrunner (NDJSON v1) protocol through the codec interface: job encoding from a neutral job, the
// streaming decoder (frames, noise, protocol errors, split chunks), the environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decoded, WorkerJob } from '../../../src/protocol/codec.js';
import { jobrunnerProtocol } from '../../../src/protocol/jobrunner/index.js';

const CTX = { pipeline: 'p', workerId: 1, pid: 123, daemonPid: 1 };

function decodeAll(chunks: (string | Buffer)[]): Decoded[] {
  const out: Decoded[] = [];
  const d = jobrunnerProtocol.decoder(CTX, (e) => out.push(e));
  for (const c of chunks) d.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  d.end();
  return out;
}

const JOB: WorkerJob = {
  id: 'j1',
  job: 'Send',
  pipeline: 'emails',
  body: Buffer.from('{"to":"a@b.c"}'),
  contentType: 'application/json',
  headers: { k: ['v'] },
  attempt: 2,
  driver: 'amqp091',
  queue: 'emails',
  messageId: 'm1',
  redelivered: true,
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
};

test('a neutral job becomes one v1 job line', () => {
  const line = jobrunnerProtocol.encodeJob(JOB, '2026-01-01T00:00:00.000Z') as string;
  assert.equal(line.indexOf('\n'), line.length - 1);
  assert.deepEqual(JSON.parse(line), {
    type: 'job',
    id: 'j1',
    job: 'Send',
    pipeline: 'emails',
    payload: { to: 'a@b.c' },
    encoding: 'json',
    headers: { k: ['v'] },
    attempt: 2,
    deadline: '2026-01-01T00:00:00.000Z',
    meta: { driver: 'amqp091', queue: 'emails', message_id: 'm1', redelivered: true },
    trace: { traceparent: JOB.traceparent },
  });
  const plain = JSON.parse(jobrunnerProtocol.encodeJob({ ...JOB, traceparent: undefined, body: Buffer.from([0xff]) }, undefined) as string) as Record<string, unknown>;
  assert.equal(plain['encoding'], 'base64');
  assert.ok(!('deadline' in plain) && !('trace' in plain));
  assert.equal(jobrunnerProtocol.encodeStop(), '{"type":"stop"}\n');
});

test('the decoder yields neutral frames, split anywhere across chunks', () => {
  const text =
    '{"type":"ready","max_concurrency":8}\n{"type":"ack","id":"a"}\r\n{"type":"nack","id":"b","error":"E","requeue":true,"delay":1.5,"headers":{"h":["1"]}}\n' +
    '{"type":"touch","id":"c"}\n{"type":"publish","id":"d","pipeline":"audit","job":"J","payload":"aGk=","encoding":"base64","delay":2,"priority":3}\n{"type":"nack","id":"e"}';
  const want: Decoded[] = [
    { kind: 'frame', frame: { type: 'ready', maxConcurrency: 8 } },
    { kind: 'frame', frame: { type: 'ack', id: 'a' } },
    { kind: 'frame', frame: { type: 'nack', id: 'b', error: 'E', requeue: true, delayMs: 1500, headers: { h: ['1'] } } },
    { kind: 'frame', frame: { type: 'touch', id: 'c' } },
    {
      kind: 'frame',
      frame: { type: 'publish', id: 'd', followUp: { pipeline: 'audit', job: 'J', body: Buffer.from('hi'), contentType: 'application/octet-stream', headers: {}, delayMs: 2000, priority: 3 } },
    },
    { kind: 'frame', frame: { type: 'nack', id: 'e', error: 'nack' } },
  ];
  assert.deepEqual(decodeAll([text]), want);
  const bytes = Buffer.from(text);
  for (const size of [1, 3, 7, 64]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    assert.deepEqual(decodeAll(chunks), want, `chunks of ${size}`);
  }
});

test('a ready without max_concurrency announces nothing; noise and broken frames are told apart', () => {
  assert.deepEqual(decodeAll(['{"type":"ready"}\nhello\n{"type":"ack"}\n{"type":"frob","id":"x"}\n']), [
    { kind: 'frame', frame: { type: 'ready' } },
    { kind: 'noise', text: 'hello' },
    { kind: 'invalid', error: 'ack frame has no "id" (a non-empty string)' },
    { kind: 'invalid', error: 'unknown frame type "frob"', id: 'x' },
  ]);
});

test('the environment names the protocol, the pipeline, the worker and the cap', () => {
  assert.deepEqual(jobrunnerProtocol.env({ pipeline: 'p', workerId: 7, maxConcurrency: 4 }), {
    JOBRUNNER_PIPELINE: 'p',
    JOBRUNNER_WORKER_ID: '7',
    JOBRUNNER_PROTOCOL: '1',
    JOBRUNNER_MAX_CONCURRENCY: '4',
    RR_MODE: 'jobs',
  });
  assert.equal(jobrunnerProtocol.multiplexed, true);
  assert.equal(jobrunnerProtocol.handshake, undefined);
});
