// Bodies to payloads (json / text / base64 / empty, the RawJson fast path) and publish payloads to bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bodyToPayload, payloadToBody, RawJson } from '../../src/protocol/payload.js';

test('a JSON body travels as its value with encoding json', () => {
  for (const text of ['{"to":"a@b.c"}', '[1,2]', '42', '"str"', 'null', 'true', '  {"a" : 1}  ']) {
    const { payload, encoding } = bodyToPayload(Buffer.from(text));
    assert.equal(encoding, 'json', text);
    assert.deepEqual(JSON.parse(JSON.stringify(payload)), JSON.parse(text), text);
  }
});

test('a one-line JSON body is kept as its own text (RawJson), parsed only on demand', () => {
  const { payload } = bodyToPayload(Buffer.from('{"n":1.0,"s":"é"}'));
  assert.ok(payload instanceof RawJson);
  assert.equal(payload.text, '{"n":1.0,"s":"é"}');
  assert.deepEqual(payload.value, { n: 1, s: 'é' });
});

test('a JSON body with a raw CR or LF is re-encoded, not spliced', () => {
  for (const text of ['{"a":\n1}', '{"a":1}\r\n', '[1,\r2]']) {
    const { payload, encoding } = bodyToPayload(Buffer.from(text));
    assert.equal(encoding, 'json');
    assert.ok(!(payload instanceof RawJson), JSON.stringify(text));
    assert.deepEqual(payload, JSON.parse(text));
  }
});

test('UTF-8 that is not JSON is text; other bytes are base64; empty is text ""', () => {
  assert.deepEqual(bodyToPayload(Buffer.from('hello wörld')), { payload: 'hello wörld', encoding: 'text' });
  assert.deepEqual(bodyToPayload(Buffer.from('{"broken":')), { payload: '{"broken":', encoding: 'text' });
  assert.deepEqual(bodyToPayload(Buffer.from('line1\nline2')), { payload: 'line1\nline2', encoding: 'text' });
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
  assert.deepEqual(bodyToPayload(bin), { payload: bin.toString('base64'), encoding: 'base64' });
  assert.deepEqual(bodyToPayload(Buffer.alloc(0)), { payload: '', encoding: 'text' });
  // a content type does not override the bytes (SPEC §4)
  assert.equal(bodyToPayload(Buffer.from('{"a":1}'), 'text/plain').encoding, 'json');
});

test('payloadToBody: json (default), text, base64; round trips with bodyToPayload', () => {
  assert.deepEqual(payloadToBody({ a: [1, 'x'] }), { body: Buffer.from('{"a":[1,"x"]}'), contentType: 'application/json' });
  assert.deepEqual(payloadToBody(undefined), { body: Buffer.from('null'), contentType: 'application/json' });
  assert.deepEqual(payloadToBody('hi', 'text'), { body: Buffer.from('hi'), contentType: 'text/plain; charset=utf-8' });
  assert.deepEqual(payloadToBody('AAEC', 'base64'), { body: Buffer.from([0, 1, 2]), contentType: 'application/octet-stream' });
  assert.throws(() => payloadToBody(5, 'text'), TypeError);
  assert.throws(() => payloadToBody({}, 'base64'), TypeError);
  for (const body of [Buffer.from('{"x":1}'), Buffer.from('text'), Buffer.from([0xff, 1, 2]), Buffer.alloc(0)]) {
    const { payload, encoding } = bodyToPayload(body);
    assert.deepEqual(payloadToBody(payload, encoding).body, body);
  }
});

test('16 MiB bodies of each kind', () => {
  const n = 16 * 1024 * 1024;
  const json = Buffer.from(JSON.stringify({ s: 'j'.repeat(n) }));
  const p1 = bodyToPayload(json);
  assert.equal(p1.encoding, 'json');
  assert.deepEqual(payloadToBody(p1.payload, p1.encoding).body, json);
  const text = Buffer.from('t'.repeat(n) + ' not json');
  assert.equal(bodyToPayload(text).encoding, 'text');
  const bin = Buffer.alloc(n, 0xff);
  const p3 = bodyToPayload(bin);
  assert.equal(p3.encoding, 'base64');
  assert.ok(payloadToBody(p3.payload, p3.encoding).body.equals(bin));
});
