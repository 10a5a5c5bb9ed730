// The hand-written frame validator agrees with schemas/worker-frames.schema.json on a table of frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { checkFrame, parseWorkerLine } from '../../../src/protocol/jobrunner/validate.js';
import { encodeFrame } from '../../../src/protocol/jobrunner/encode.js';
import { bodyToPayload } from '../../../src/protocol/payload.js';

const schema = JSON.parse(readFileSync(new URL('../../../schemas/worker-frames.schema.json', import.meta.url), 'utf8')) as { $id: string };

function compile(ref: string) {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addSchema(schema);
  const validate = ajv.getSchema(`${schema.$id}#/$defs/${ref}`);
  assert.ok(validate, `schema has $defs/${ref}`);
  return validate;
}

const GOOD: unknown[] = [
  { type: 'ready' },
  { type: 'ready', max_concurrency: 1 },
  { type: 'ready', max_concurrency: 64, extra: true },
  { type: 'ack', id: 'a' },
  { type: 'ack', id: 'a', extra: 'ignored' },
  { type: 'touch', id: 'a' },
  { type: 'nack', id: 'a' },
  { type: 'nack', id: 'a', error: 'SMTP 451', requeue: true, delay: 30, headers: { k: ['v'], e: [] } },
  { type: 'nack', id: 'a', requeue: false, delay: 0.5 },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: { x: 1 } },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: null, headers: {}, delay: 0, priority: 5 },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'hi', encoding: 'text' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'AAEC', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: '', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'AAE=', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'AA==', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: [1, 2], encoding: 'json', priority: -1 },
];

const BAD: unknown[] = [
  {},
  { type: 'ready', max_concurrency: 0 },
  { type: 'ready', max_concurrency: 1.5 },
  { type: 'ready', max_concurrency: '8' },
  { id: 'a' },
  { type: 'frobnicate', id: 'a' },
  { type: 'job', id: 'a' },
  { type: 'stop' },
  { type: 'ack' },
  { type: 'ack', id: '' },
  { type: 'ack', id: 5 },
  { type: 5, id: 'a' },
  { type: 'nack', id: 'a', error: 5 },
  { type: 'nack', id: 'a', requeue: 'yes' },
  { type: 'nack', id: 'a', delay: -1 },
  { type: 'nack', id: 'a', delay: '30' },
  { type: 'nack', id: 'a', headers: { k: 'v' } },
  { type: 'nack', id: 'a', headers: { k: [1] } },
  { type: 'nack', id: 'a', headers: [] },
  { type: 'publish', id: 'a', job: 'Sent', payload: 1 },
  { type: 'publish', id: 'a', pipeline: '', job: 'Sent', payload: 1 },
  { type: 'publish', id: 'a', pipeline: 'audit', payload: 1 },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 1, encoding: 'xml' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 1, encoding: 'text' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'not base64!', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'AAE', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'A===', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: '====', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 'AA=A', encoding: 'base64' },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 1, priority: 1.5 },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 1, delay: -2 },
  { type: 'publish', id: 'a', pipeline: 'audit', job: 'Sent', payload: 1, headers: { k: [null] } },
];

test('hand validator and JSON Schema agree on every frame of the table', () => {
  const validate = compile('fromWorker');
  for (const frame of GOOD) {
    assert.equal(validate(frame), true, `schema accepts ${JSON.stringify(frame)}: ${JSON.stringify(validate.errors)}`);
    assert.equal(checkFrame(frame as Record<string, unknown>), undefined, `validator accepts ${JSON.stringify(frame)}`);
    assert.deepEqual(parseWorkerLine(JSON.stringify(frame)), { kind: 'frame', frame });
  }
  for (const frame of BAD) {
    assert.equal(validate(frame), false, `schema rejects ${JSON.stringify(frame)}`);
    assert.equal(typeof checkFrame(frame as Record<string, unknown>), 'string', `validator rejects ${JSON.stringify(frame)}`);
    assert.equal(parseWorkerLine(JSON.stringify(frame)).kind, 'invalid');
  }
});

test('frames jobrunner writes match #/$defs/toWorker', () => {
  const validate = compile('toWorker');
  for (const body of ['{"a":1}', 'text', Buffer.from([0xff]), '']) {
    const { payload, encoding } = bodyToPayload(Buffer.isBuffer(body) ? body : Buffer.from(body));
    const line = encodeFrame({
      type: 'job',
      id: 'x',
      job: 'J',
      pipeline: 'p',
      payload,
      encoding,
      headers: { a: ['b'] },
      attempt: 1,
      deadline: new Date(0).toISOString(),
      meta: { driver: 'memory', queue: 'q', message_id: 'x', redelivered: false },
      trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    assert.equal(validate(JSON.parse(line)), true, JSON.stringify(validate.errors));
  }
  assert.equal(validate(JSON.parse(encodeFrame({ type: 'stop' }))), true);
  assert.equal(validate({ type: 'job', id: 'x' }), false);
});

test('lines that are not JSON objects are not-json; invalid frames carry their id when they have one', () => {
  for (const line of ['hello', '[1,2]', '42', '"s"', 'null', '{"a":', '   ', 'true']) {
    assert.deepEqual(parseWorkerLine(line), { kind: 'not-json', line });
  }
  assert.deepEqual(parseWorkerLine('{"type":"frobnicate","id":"j1"}'), { kind: 'invalid', error: 'unknown frame type "frobnicate"', id: 'j1' });
  const noId = parseWorkerLine('{"type":"ack"}');
  assert.equal(noId.kind, 'invalid');
  assert.ok(!('id' in noId));
  assert.equal(parseWorkerLine(' \t{"type":"ack","id":"z"}').kind, 'frame');
});

test('the plain ack line, read without JSON.parse, reads as JSON.parse reads it; anything else takes the full parse', () => {
  // ids as JSON.stringify writes them: plain, escaped quote and backslash, unicode, an escaped control
  for (const id of ['j-1', 'a"b', 'a\\b', 'é✓', 'tab\there', '']) {
    const line = JSON.stringify({ type: 'ack', id });
    const expected = id === '' ? parseWorkerLine(line) : { kind: 'frame', frame: { type: 'ack', id } };
    assert.deepEqual(parseWorkerLine(line), expected, line);
    if (id === '') assert.equal(expected.kind, 'invalid');
  }
  // a raw control character is not JSON; a line that only looks like the plain ack is parsed in full
  assert.equal(parseWorkerLine('{"type":"ack","id":"a\tb"}').kind, 'not-json');
  assert.equal(parseWorkerLine('{"type":"ack","id":"a"} ').kind, 'frame');
  assert.deepEqual(parseWorkerLine('{"type":"ack","id":"a","x":"y"}'), { kind: 'frame', frame: { type: 'ack', id: 'a', x: 'y' } });
  assert.equal(parseWorkerLine('{"type":"ack","id":"a"}}').kind, 'not-json');
  assert.equal(parseWorkerLine('{"type":"ack","id":"a""}').kind, 'not-json');
});
