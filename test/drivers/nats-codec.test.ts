// The nats codec's envelope check, without a server: RoadRunner's envelope is recognised whatever its key
// order or escapes, and a body that cannot be one is not JSON-parsed on the way (it is parsed once, later,
// where it becomes the frame's payload).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnvelope } from '../../src/drivers/nats/codec.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test("RoadRunner's envelope is recognised in any key order, and with \\u-escaped key names", () => {
  const forms = [
    `{"job":"J","id":"1","payload":"${b64('{"a":1}')}","options":{"priority":3}}`,
    `{"options":{"priority":3},"payload":"${b64('{"a":1}')}","id":"1","job":"J"}`,
    `{"\\u006aob":"J","\\u0069d":"1","payload":"${b64('{"a":1}')}","options":{"priority":3}}`,
    ` \n{"job":"J","id":"1","payload":"${b64('{"a":1}')}","options":{"priority":3}}`,
  ];
  for (const f of forms) {
    const e = parseEnvelope(Buffer.from(f));
    assert.ok(e, f);
    assert.equal(e.job, 'J');
    assert.equal(e.id, '1');
    assert.equal(e.body.toString(), '{"a":1}');
    assert.equal(e.priority, 3);
  }
});

test('a body that names no "job" or no "id" is a raw body, and is not JSON-parsed to find out', () => {
  const parse = JSON.parse;
  let calls = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    calls += 1;
    return parse(text, reviver);
  }) as typeof JSON.parse;
  try {
    for (const raw of ['{"n":1,"ts":5,"pad":"xxxx"}', '{"job":"J","n":1}', '{"id":"1","payload":""}', '[1,2]', 'hello']) {
      assert.equal(parseEnvelope(Buffer.from(raw)), undefined, raw);
    }
    assert.equal(calls, 0);
    // the check still parses what may be an envelope, and a third-party object that merely has the keys is raw
    assert.equal(parseEnvelope(Buffer.from('{"job":"","id":"1"}')), undefined);
    assert.equal(calls, 1);
  } finally {
    JSON.parse = parse;
  }
});
