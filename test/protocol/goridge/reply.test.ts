// goridge job frames (context JSON, RoadRunner's driver names and rr_* headers) and answers (every
// reply type spiral/roadrunner-jobs' ReceivedTask writes, the ERROR frame, the restart request, and
// everything that breaks the protocol).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODEC_RAW, CONTROL, CODEC_JSON, ERROR, FrameDecoder, encodeFrame, type Frame } from '../../../src/protocol/goridge/frame.js';
import { encodeJob, jobContext, roadrunnerDriverName, type GoridgeJob } from '../../../src/protocol/goridge/job.js';
import { parseReply, type Reply } from '../../../src/protocol/goridge/reply.js';

function decodeOne(bytes: Buffer): Frame {
  let got: Frame | undefined;
  const d = new FrameDecoder({ frame: (f) => (got = f), error: (e) => assert.fail(e) });
  d.push(bytes);
  assert.ok(got);
  return got;
}

/** an answer as ReceivedTask::respond writes it: Payload($body) = no context, options [0] */
function answer(body: unknown): Reply {
  return parseReply(decodeOne(encodeFrame(0, [0], typeof body === 'string' ? body : JSON.stringify(body))));
}

const job: GoridgeJob = { id: 'j-1', job: 'App\\Jobs\\Mail', pipeline: 'emails', driver: 'amqp091', queue: 'q.emails', headers: { tenant: ['acme'] }, priority: 10 };

test('job frame: CODEC_RAW, one option = the context length, then the body bytes as they are', () => {
  const body = Buffer.from([0x7b, 0xff, 0x00, 0x7d]);
  const f = decodeOne(encodeJob(job, body));
  assert.equal(f.flags, CODEC_RAW);
  assert.equal(f.options.length, 1);
  const ctx = f.payload.subarray(0, f.options[0]).toString();
  assert.ok(f.payload.subarray(f.options[0]).equals(body));
  assert.deepEqual(JSON.parse(ctx), {
    id: 'j-1',
    job: 'App\\Jobs\\Mail',
    driver: 'amqp',
    queue: 'q.emails',
    headers: {
      tenant: ['acme'],
      rr_id: ['j-1'],
      rr_job: ['App\\Jobs\\Mail'],
      rr_pipeline: ['emails'],
      rr_headers: ['{"tenant":["acme"]}'],
      rr_priority: ['10'],
      rr_auto_ack: ['false'],
    },
    pipeline: 'emails',
  });
  assert.ok(ctx.startsWith('{"id":"j-1","job":"App\\\\Jobs\\\\Mail","driver":"amqp","queue":"q.emails","headers":{'), ctx);
});

test('job context: RoadRunner driver names; no rr_* headers where RoadRunner shows none', () => {
  assert.deepEqual(['amqp091', 'amqp1', 'nats', 'sqs', 'memory'].map(roadrunnerDriverName), ['amqp', 'amqp', 'nats', 'sqs', 'memory']);
  const mem = JSON.parse(jobContext({ ...job, driver: 'memory', headers: {} }));
  assert.deepEqual(mem, { id: 'j-1', job: 'App\\Jobs\\Mail', driver: 'memory', queue: 'q.emails', headers: {}, pipeline: 'emails' });
  const noPrio = JSON.parse(jobContext({ id: 'x', job: 'J', pipeline: 'p', driver: 'amqp1', queue: 'q', headers: {} }));
  assert.equal(noPrio.headers.rr_priority, undefined);
  assert.deepEqual(noPrio.headers.rr_headers, ['{}']);
});

test('answers: complete (0) and ack (2), data as [] or {} or absent', () => {
  for (const body of [{ type: 0, data: [] }, { type: 0, data: {} }, { type: 2, data: [] }, { type: 2 }, { type: 2, data: { extra: 1 } }]) {
    assert.deepEqual(answer(body), { kind: 'ack' }, JSON.stringify(body));
  }
});

test('answers: fail (1) with and without requeue, as ReceivedTask::fail writes it', () => {
  assert.deepEqual(answer({ type: 1, data: { message: 'SMTP 451', requeue: false, delay_seconds: 0 } }), { kind: 'nack', error: 'SMTP 451' });
  assert.deepEqual(answer({ type: 1, data: { message: 'SMTP 451', requeue: false, delay_seconds: 5, headers: { a: ['b'] } } }), { kind: 'nack', error: 'SMTP 451' });
  assert.deepEqual(answer({ type: 1, data: { message: 'later', requeue: true, delay_seconds: 5, headers: { a: ['b'], rr_id: ['j-1'], rr_headers: ['{}'] } } }), {
    kind: 'nack',
    error: 'later',
    requeue: true,
    delaySeconds: 5,
    headers: { a: ['b'] },
  });
  assert.deepEqual(answer({ type: 1, data: { message: '', requeue: true, delay_seconds: 0 } }), { kind: 'nack', error: 'failed by the worker', requeue: true });
});

test('answers: nack (3) and requeue (4)', () => {
  assert.deepEqual(answer({ type: 3, data: { message: 'bad input', requeue: false, delay_seconds: 0 } }), { kind: 'nack', error: 'bad input' });
  assert.deepEqual(answer({ type: 3, data: { message: 'busy', requeue: true, delay_seconds: 2 } }), { kind: 'nack', error: 'busy', requeue: true, delaySeconds: 2 });
  assert.deepEqual(answer({ type: 4, data: { message: 'again', delay_seconds: 3, headers: { n: ['1', '2'] } } }), {
    kind: 'nack',
    error: 'again',
    requeue: true,
    delaySeconds: 3,
    headers: { n: ['1', '2'] },
  });
  assert.deepEqual(answer({ type: 4, data: { message: 'again', delay_seconds: 0, headers: [] } }), { kind: 'nack', error: 'again', requeue: true });
  // a PHP list that lost its sequential keys is encoded as an object
  assert.deepEqual(answer({ type: 4, data: { headers: { n: { '1': 'x' } } } }), { kind: 'nack', error: 'requeued by the worker', requeue: true, headers: { n: ['x'] } });
});

test('answers: the ERROR frame is a failure with its text', () => {
  assert.deepEqual(parseReply(decodeOne(encodeFrame(ERROR, [], 'PDOException: gone away'))), { kind: 'nack', error: 'PDOException: gone away' });
  assert.deepEqual(parseReply(decodeOne(encodeFrame(ERROR, [], ''))), { kind: 'nack', error: 'the worker sent an error frame with no text' });
});

test('answers: the restart request {"stop":true} with an empty body', () => {
  assert.deepEqual(parseReply(decodeOne(encodeFrame(0, [13], '{"stop":true}'))), { kind: 'restart' });
  assert.deepEqual(parseReply(decodeOne(encodeFrame(0, [16], '{ "stop": true }'))), { kind: 'restart' });
  assert.equal(parseReply(decodeOne(encodeFrame(0, [14], '{"stop":false}'))).kind, 'invalid');
});

test('answers that break the protocol say what was wrong', () => {
  const cases: [Frame | unknown, RegExp][] = [
    [{ type: 5, data: [] }, /"type" 5 \(0 to 4 are known\)/],
    [{ data: [] }, /"type" missing/],
    [{ type: '2', data: [] }, /"type" "2"/],
    [{ type: 2, data: [1] }, /"data" is \[1\], not an object/],
    [{ type: 2, data: 'x' }, /"data" is "x"/],
    [{ type: 1, data: { message: 3 } }, /"data.message" is not a string/],
    [{ type: 1, data: { requeue: 'yes' } }, /"data.requeue" is not a boolean/],
    [{ type: 4, data: { delay_seconds: -1 } }, /"data.delay_seconds" is not a whole number >= 0/],
    [{ type: 4, data: { delay_seconds: 1.5 } }, /"data.delay_seconds"/],
    [{ type: 4, data: { headers: { a: [1] } } }, /"data.headers" is not an object of string lists/],
    [{ type: 4, data: { headers: 'a' } }, /"data.headers"/],
    ['not json', /an answer body that is not JSON: not json/],
    ['[2]', /not a JSON object/],
  ];
  for (const [body, re] of cases) {
    const r = answer(body);
    assert.equal(r.kind, 'invalid', JSON.stringify(body));
    assert.match((r as { error: string }).error, re);
  }
  const frames: [Buffer, RegExp][] = [
    [encodeFrame(CONTROL | CODEC_JSON, [], '{"pid":1}'), /a control frame \(\{"pid":1\}\) where the answer to a job was due/],
    [encodeFrame(0, [0], '{"type":2,"data":[]}', 0x01), /stream flags 0x1 \(streamed answers are not supported\)/],
    [encodeFrame(0, [], '{"type":2,"data":[]}'), /an answer with 0 options \(exactly 1, the context length, is expected\)/],
    [encodeFrame(0, [0, 0], '{"type":2,"data":[]}'), /2 options/],
    [encodeFrame(0, [99], '{}'), /context length 99 is over its payload length 2/],
    [encodeFrame(0, [0], ''), /an empty answer/],
    [encodeFrame(0, [7], '{"a":1}'), /an empty body and the context \{"a":1\}/],
  ];
  for (const [bytes, re] of frames) {
    const r = parseReply(decodeOne(bytes));
    assert.equal(r.kind, 'invalid');
    assert.match((r as { error: string }).error, re);
  }
});

test('an answer with a context and a body reads the body (RoadRunner ignores the context)', () => {
  assert.deepEqual(parseReply(decodeOne(encodeFrame(0, [2], '{}{"type":2,"data":[]}'))), { kind: 'ack' });
});
