// The goridge WorkerProtocol as the pool uses it: environment, handshake, job and stop bytes, and the
// decoder's events (the pid answer as `ready` with one job at a time, answers without job ids, errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decoded, WorkerContext, WorkerJob } from '../../../src/protocol/codec.js';
import { CODEC_JSON, CODEC_RAW, CONTROL, ERROR, FrameDecoder, encodeFrame, type Frame } from '../../../src/protocol/goridge/frame.js';
import { goridgeProtocol } from '../../../src/protocol/goridge/index.js';
import { protocolNamed } from '../../../src/protocol/registry.js';

const ctx: WorkerContext = { pipeline: 'emails', workerId: 1, pid: 4242, daemonPid: 777 };

function frameOf(bytes: Uint8Array | string): Frame {
  let got: Frame | undefined;
  new FrameDecoder({ frame: (f) => (got = f), error: (e) => assert.fail(e) }).push(Buffer.from(bytes));
  assert.ok(got);
  return got;
}

function decode(...chunks: Buffer[]): Decoded[] {
  const events: Decoded[] = [];
  const d = goridgeProtocol.decoder(ctx, (e) => events.push(e));
  for (const c of chunks) d.push(c);
  d.end();
  return events;
}

const hello = encodeFrame(CONTROL, [], '{"pid":4242}');

test('registered as goridge: no job ids, a handshake, 10 s to stop', () => {
  assert.equal(protocolNamed('goridge'), goridgeProtocol);
  assert.equal(goridgeProtocol.multiplexed, false);
  assert.equal(goridgeProtocol.stopTimeoutMs, 10_000);
  assert.ok(goridgeProtocol.handshake);
  assert.equal(goridgeProtocol.handshake.timeoutMs, undefined, "the pool's allocate_timeout");
});

test('environment: RR_MODE, RR_RELAY, RR_VERSION and nothing of protocol v1', () => {
  assert.deepEqual(goridgeProtocol.env({ pipeline: 'emails', workerId: 1, maxConcurrency: 16 }), { RR_MODE: 'jobs', RR_RELAY: 'pipes', RR_VERSION: '2025.1.0' });
});

test("hello: a CONTROL|CODEC_JSON frame with jobrunner's pid; stop: {\"stop\":true}", () => {
  const h = frameOf(goridgeProtocol.handshake?.hello(ctx) as Uint8Array);
  assert.equal(h.flags, CONTROL | CODEC_JSON);
  assert.deepEqual(JSON.parse(h.payload.toString()), { pid: 777 });
  const s = frameOf(goridgeProtocol.encodeStop());
  assert.equal(s.flags, CONTROL | CODEC_JSON);
  assert.equal(s.payload.toString(), '{"stop":true}');
});

test('a job: context from the driver-neutral job, then the body bytes', () => {
  const job: WorkerJob = {
    id: 'j1',
    job: 'Mail',
    pipeline: 'emails',
    body: Buffer.from('raw body \u00e9'),
    contentType: 'text/plain',
    headers: { a: ['1'] },
    attempt: 3,
    driver: 'memory',
    queue: 'emails',
    messageId: 'j1',
    redelivered: true,
    traceparent: undefined,
  };
  const f = frameOf(goridgeProtocol.encodeJob(job, '2026-01-01T00:00:00.000Z'));
  assert.equal(f.flags, CODEC_RAW);
  const n = f.options[0] as number;
  assert.deepEqual(JSON.parse(f.payload.subarray(0, n).toString()), { id: 'j1', job: 'Mail', driver: 'memory', queue: 'emails', headers: { a: ['1'] }, pipeline: 'emails' });
  assert.equal(f.payload.subarray(n).toString(), 'raw body \u00e9');
});

test('the pid answer is ready with one job at a time; then answers without job ids', () => {
  const events = decode(
    Buffer.concat([
      hello,
      encodeFrame(0, [0], '{"type":2,"data":[]}'),
      encodeFrame(0, [0], '{"type":4,"data":{"message":"m","delay_seconds":3,"headers":{"h":["v"]}}}'),
      encodeFrame(0, [0], '{"type":3,"data":{"message":"n","requeue":false,"delay_seconds":0}}'),
      encodeFrame(ERROR, [], 'boom'),
      encodeFrame(0, [13], '{"stop":true}'),
    ]),
  );
  assert.deepEqual(events, [
    { kind: 'frame', frame: { type: 'ready', maxConcurrency: 1 } },
    { kind: 'frame', frame: { type: 'ack' } },
    { kind: 'frame', frame: { type: 'nack', error: 'm', requeue: true, delayMs: 3000, headers: { h: ['v'] } } },
    { kind: 'frame', frame: { type: 'nack', error: 'n' } },
    { kind: 'frame', frame: { type: 'nack', error: 'boom' } },
    { kind: 'frame', frame: { type: 'restart' } },
  ]);
});

test('before the pid answer: anything else is a protocol error', () => {
  assert.deepEqual(decode(encodeFrame(0, [0], '{"type":2,"data":[]}')), [
    { kind: 'invalid', error: 'the worker answered the pid frame with a frame that is not a CONTROL frame (a RoadRunner worker answers {"pid":N} first)' },
  ]);
  assert.match((decode(encodeFrame(CONTROL, [], '{"pid":0}'))[0] as { error: string }).error, /no "pid" above 0/);
  assert.match((decode(encodeFrame(CONTROL, [], 'pid'))[0] as { error: string }).error, /not JSON: pid/);
});

test('bad bytes, bad answers and a second pid answer are protocol errors naming what was wrong', () => {
  const bad = encodeFrame(0, [0], '{"type":2,"data":[]}');
  bad[7] = (bad[7] as number) ^ 1;
  const [ready, crc] = decode(hello, bad);
  assert.deepEqual(ready, { kind: 'frame', frame: { type: 'ready', maxConcurrency: 1 } });
  assert.equal(crc?.kind, 'invalid');
  assert.match((crc as { error: string }).error, /bad CRC/);
  assert.match((decode(hello, Buffer.from('Warning: something\n'))[1] as { error: string }).error, /it reads "Warning: something\\n"/);
  assert.match((decode(hello, encodeFrame(0, [0], '{"type":9}'))[1] as { error: string }).error, /^the worker sent an answer with "type" 9/);
  assert.match((decode(hello, hello)[1] as { error: string }).error, /^the worker sent a control frame \(\{"pid":4242\}\) where the answer to a job was due/);
  assert.match((decode(Buffer.concat([hello, hello.subarray(0, 5)]))[1] as { error: string }).error, /stdout ended inside a frame/);
});
