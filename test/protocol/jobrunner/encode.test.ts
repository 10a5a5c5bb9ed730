// encodeFrame (one line, hand-built job frames equal to JSON.stringify) and the stdout line splitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../../../src/protocol/jobrunner/encode.js';
import { LineSplitter } from '../../../src/shared/lines.js';
import type { JobFrame } from '../../../src/protocol/jobrunner/frames.js';
import { bodyToPayload, RawJson } from '../../../src/protocol/payload.js';

function frame(body: string | Buffer, extra: Partial<JobFrame> = {}): JobFrame {
  const { payload, encoding } = bodyToPayload(Buffer.isBuffer(body) ? body : Buffer.from(body));
  return {
    type: 'job',
    id: 'id-"1"\n',
    job: 'Send\u2028Mail',
    pipeline: 'emails',
    payload,
    encoding,
    headers: { tenant: ['acme', 'x"y'], empty: [] },
    attempt: 2,
    meta: { driver: 'amqp091', queue: 'emails', message_id: 'm1', redelivered: true },
    ...extra,
  };
}

test('a job frame is one line that parses back to the frame', () => {
  for (const body of ['{"to":"a@b.c","n":[1,2,{"x":null}]}', ' 42 ', 'plain text', '', '{"a":\n1}', Buffer.from([0xff, 0x00, 0x10])]) {
    const f = frame(body, { deadline: '2026-01-01T00:00:00.000Z', trace: { traceparent: '00-abc-def-01' } });
    const line = encodeFrame(f);
    assert.ok(line.endsWith('\n'));
    assert.equal(line.indexOf('\n'), line.length - 1, 'no raw newline inside the line');
    assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(f)));
  }
});

test('optional fields are left out when absent, and key order is stable', () => {
  const line = encodeFrame(frame('{"a":1}'));
  assert.equal(
    line,
    '{"type":"job","id":"id-\\"1\\"\\n","job":"Send\u2028Mail","pipeline":"emails","payload":{"a":1},"encoding":"json",' +
      '"headers":{"tenant":["acme","x\\"y"],"empty":[]},"attempt":2,"meta":{"driver":"amqp091","queue":"emails","message_id":"m1","redelivered":true}}\n',
  );
});

test('a RawJson payload is spliced verbatim (no re-encoding)', () => {
  const f = frame('{"b":2,"a":1.50}');
  assert.ok(f.payload instanceof RawJson);
  assert.ok(encodeFrame(f).includes(',"payload":{"b":2,"a":1.50},'));
});

test('stop frame', () => {
  assert.equal(encodeFrame({ type: 'stop' }), '{"type":"stop"}\n');
});

function split(chunks: Buffer[], max?: number): { lines: string[]; overflows: number[] } {
  const lines: string[] = [];
  const overflows: number[] = [];
  const s = new LineSplitter((l) => lines.push(l), (b) => overflows.push(b), max);
  for (const c of chunks) s.push(c);
  s.end();
  return { lines, overflows };
}

test('splitter: lines across chunk boundaries, CRLF, blank lines, a last line without newline', () => {
  const text = Buffer.from('{"a":1}\r\n\n{"b":"é€😀"}\nlast');
  // every split point, including inside multi-byte characters
  for (let i = 0; i <= text.length; i++) {
    const { lines } = split([text.subarray(0, i), text.subarray(i)]);
    assert.deepEqual(lines, ['{"a":1}', '{"b":"é€😀"}', 'last'], `split at ${i}`);
  }
  const bytes = [...text].map((b) => Buffer.from([b]));
  assert.deepEqual(split(bytes).lines, ['{"a":1}', '{"b":"é€😀"}', 'last']);
});

test('splitter: a 16 MiB line in 64 KiB chunks', () => {
  const big = 'x'.repeat(16 * 1024 * 1024);
  const all = Buffer.from(`{"s":"${big}"}\n{"t":1}\n`);
  const chunks: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) chunks.push(all.subarray(i, i + 65536));
  const { lines, overflows } = split(chunks);
  assert.equal(lines.length, 2);
  assert.equal(lines[0]?.length, big.length + 8);
  assert.equal(lines[1], '{"t":1}');
  assert.deepEqual(overflows, []);
});

test('splitter: a line over the cap is reported once and skipped; the next line still arrives', () => {
  const { lines, overflows } = split([Buffer.from('ok1\n' + 'y'.repeat(50)), Buffer.from('y'.repeat(50)), Buffer.from('yyy\nok2\n')], 64);
  assert.deepEqual(lines, ['ok1', 'ok2']);
  assert.equal(overflows.length, 1);
  const one = split([Buffer.from('z'.repeat(100) + '\nok\n')], 64);
  assert.deepEqual(one.lines, ['ok']);
  assert.equal(one.overflows.length, 1);
});
