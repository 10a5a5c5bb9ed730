// The nats codec's envelope check, without a server: RoadRunner's envelope is recognised whatever its key
// order or escapes, and a body that cannot be one is not JSON-parsed on the way (it is parsed once, later,
// where it becomes the frame's payload); the reply subject is read as the client itself reads it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseAckSubject, parseEnvelope } from '../../src/drivers/nats/codec.js';

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

// the client's own reading of a reply subject (JsMsg.info), from its file: the package exports it to no one
const require = createRequire(import.meta.url);
const clientParseInfo = (require(join(dirname(require.resolve('@nats-io/jetstream')), 'jsmsg.js')) as { parseInfo(s: string): { stream: string; deliveryCount: number; streamSequence: number } }).parseInfo;

test('the reply subject gives the stream, delivery count and stream sequence as the client reads them, in both forms', () => {
  const subjects = [
    '$JS.ACK.JOBS.jobrunner-p.1.42.40.1764547200000000000.7',
    '$JS.ACK.JOBS.jobrunner-p.3.9007199254740991.12.1764547200000000000.0',
    '$JS.ACK._.ACCHASH.JOBS.jobrunner-p.2.17.16.1764547200000000000.0.Rand0m',
    '$JS.ACK.hub.ACCHASH.S-1.c_2.11.5.5.1764547200000000000.3.tok',
    '$JS.ACK.hub.ACCHASH.S.c.1.5.5.1764547200000000000.3',
  ];
  for (const s of subjects) {
    const mine = parseAckSubject(s);
    const theirs = clientParseInfo(s);
    assert.deepEqual(mine, { stream: theirs.stream, deliveryCount: theirs.deliveryCount, streamSeq: theirs.streamSequence }, s);
  }
  for (const s of ['', '_INBOX.abc.1', '$JS.ACK.S.c.1.2', '$JS.ACK.S.c.x.2.3.4.5', '$JS.ACK.S.c..2.3.4.5', '$JS.ACK.S.c.1.9007199254740993.3.4.5', '$JS.API.CONSUMER.INFO.S.c.1.2.3']) {
    assert.equal(parseAckSubject(s), undefined, s);
  }
});
