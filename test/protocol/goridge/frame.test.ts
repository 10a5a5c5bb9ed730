// goridge frames: byte-exact against frames spiral/goridge's PHP packFrame writes, the CRC, and the
// streaming decoder (frames split across reads at every byte, several in one read, bad headers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import {
  CODEC_JSON,
  CONTROL,
  ERROR,
  FrameDecoder,
  MAX_OPTIONS,
  crc32,
  encodeControl,
  encodeFrame,
  tableCrc32,
  type Frame,
} from '../../../src/protocol/goridge/frame.js';

// Written by PHP 8.2 with pack('CCL', ...) . pack('LCC[L*]', crc32($header), 0, 0, ...$options) . $payload,
// as Spiral\Goridge\Frame::packFrame does (flags without CODEC_JSON: PHP's Worker sends CONTROL alone).
const PHP = {
  pid: '13010c0000009e47364300007b22706964223a343234327d', // CONTROL {"pid":4242}
  ack: '140014000000e621fef60000000000007b2274797065223a322c2264617461223a5b5d7d', // options [0], {"type":2,"data":[]}
  stop: '14000d000000f339efdb00000d0000007b2273746f70223a747275657d', // options [13], {"stop":true}, empty body
  error: '134004000000881e11e30000626f6f6d', // ERROR "boom"
};

function decodeAll(chunks: Buffer[]): { frames: Frame[]; errors: string[] } {
  const frames: Frame[] = [];
  const errors: string[] = [];
  const d = new FrameDecoder({ frame: (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }), error: (e) => errors.push(e) });
  for (const c of chunks) d.push(c);
  d.end();
  return { frames, errors };
}

test('crc32: zlib and the fallback table agree, and match PHP crc32()', () => {
  assert.equal(typeof (zlib as { crc32?: unknown }).crc32, 'function', 'Node 20.20 has zlib.crc32');
  assert.equal(crc32(Buffer.from('hello')), 0x3610a686);
  assert.equal(tableCrc32(Buffer.from('hello')), 0x3610a686);
  for (let i = 0; i < 200; i++) {
    const b = randomBytes(i % 17);
    assert.equal(tableCrc32(b), zlib.crc32(b));
  }
});

test('encode: byte for byte what the PHP library writes', () => {
  assert.equal(encodeFrame(CONTROL, [], '{"pid":4242}').toString('hex'), PHP.pid);
  assert.equal(encodeFrame(0, [0], '{"type":2,"data":[]}').toString('hex'), PHP.ack);
  assert.equal(encodeFrame(0, [13], '{"stop":true}').toString('hex'), PHP.stop);
  assert.equal(encodeFrame(ERROR, [], 'boom').toString('hex'), PHP.error);
});

test('encode: a control frame carries CONTROL|CODEC_JSON and JSON', () => {
  const b = encodeControl({ pid: 7 });
  assert.equal(b[0], 0x13);
  assert.equal(b[1], CONTROL | CODEC_JSON);
  assert.equal(b.subarray(12).toString(), '{"pid":7}');
  assert.throws(() => encodeFrame(0, new Array(MAX_OPTIONS + 1).fill(0), ''), /at most 10 options/);
});

test('decode: the PHP frames read back', () => {
  const { frames, errors } = decodeAll([Buffer.from(PHP.pid + PHP.ack + PHP.stop + PHP.error, 'hex')]);
  assert.deepEqual(errors, []);
  assert.equal(frames.length, 4);
  assert.deepEqual(frames.map((f) => [f.flags, f.options, f.payload.toString(), f.stream]), [
    [CONTROL, [], '{"pid":4242}', 0],
    [0, [0], '{"type":2,"data":[]}', 0],
    [0, [13], '{"stop":true}', 0],
    [ERROR, [], 'boom', 0],
  ]);
});

test('decode: every split point of a stream of frames, and byte by byte', () => {
  const frames = [
    encodeFrame(CONTROL | CODEC_JSON, [], '{"pid":1}'),
    encodeFrame(0, [3], 'abcdef'),
    encodeFrame(0, [], ''),
    encodeFrame(0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Buffer.from([0, 1, 2, 255])),
    encodeFrame(ERROR, [0], 'é€😀', 0x01),
  ];
  const all = Buffer.concat(frames);
  const want = decodeAll([all]).frames;
  assert.equal(want.length, frames.length);
  assert.deepEqual(want[3]?.options, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(want[4]?.stream, 1);
  for (let i = 0; i <= all.length; i++) {
    for (let j = i; j <= all.length; j += 7) {
      const got = decodeAll([all.subarray(0, i), all.subarray(i, j), all.subarray(j)]);
      assert.deepEqual(got.errors, [], `split at ${i},${j}`);
      assert.deepEqual(got.frames, want, `split at ${i},${j}`);
    }
  }
  const bytes = [...all].map((b) => Buffer.from([b]));
  assert.deepEqual(decodeAll(bytes).frames, want);
});

test('decode: a 5 MiB payload in 64 KiB reads', () => {
  const payload = randomBytes(5 * 1024 * 1024);
  const all = Buffer.concat([encodeFrame(0, [10], payload), encodeFrame(0, [0], 'x')]);
  const chunks: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) chunks.push(all.subarray(i, i + 65536));
  const { frames, errors } = decodeAll(chunks);
  assert.deepEqual(errors, []);
  assert.equal(frames.length, 2);
  assert.ok(frames[0]?.payload.equals(payload));
  assert.equal(frames[1]?.payload.toString(), 'x');
});

test('decode: a bad CRC is an error naming both CRCs; nothing after it is read', () => {
  const bad = encodeFrame(0, [0], '{"type":2,"data":[]}');
  bad[6] = (bad[6] as number) ^ 0xff;
  const { frames, errors } = decodeAll([encodeFrame(0, [0], 'ok'), bad, encodeFrame(0, [0], 'after')]);
  assert.equal(frames.length, 1);
  assert.equal(errors.length, 1);
  assert.match(errors[0] as string, /^stdout carried a header with a bad CRC \(0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}\), not a goridge frame/);
});

test('decode: a changed length byte fails the CRC too (the CRC covers bytes 0-5)', () => {
  const bad = encodeFrame(0, [0], 'abc');
  bad[2] = 2;
  assert.match(decodeAll([bad]).errors[0] as string, /bad CRC/);
});

test('decode: bad version, bad header length, too long a payload', () => {
  const v2 = encodeFrame(0, [], 'x');
  v2[0] = 0x23;
  assert.match(decodeAll([v2]).errors[0] as string, /a header with version 2 \(byte 0 = 0x23; goridge frames start with version 1\)/);
  const hl = encodeFrame(0, [], 'x');
  hl[0] = 0x12;
  assert.match(decodeAll([hl]).errors[0] as string, /a header length of 2 words \(byte 0 = 0x12; 3 to 13 are valid\)/);
  const long = encodeFrame(0, [], 'x'.repeat(100));
  const errors: string[] = [];
  const d = new FrameDecoder({ frame: () => assert.fail('no frame'), error: (e) => errors.push(e) }, 50);
  d.push(long);
  assert.match(errors[0] as string, /a payload length of 100 bytes \(the limit is 50\)/);
});

test('decode: printed text is an error at its first byte, quoting it with a hint', () => {
  const errors: string[] = [];
  const d = new FrameDecoder({ frame: () => assert.fail('no frame'), error: (e) => errors.push(e) });
  d.push(Buffer.from('hi\n')); // fewer than 12 bytes: caught at once all the same
  assert.equal(errors.length, 1);
  assert.match(errors[0] as string, /byte 0 = 0x68.*it reads "hi\\n" \(the worker printed to stdout, which carries only frames: write logs to stderr/);
  const php = decodeAll([Buffer.from('Could not open input file: worker.php\n')]).errors[0] as string;
  assert.match(php, /it reads "Could not open input file: worker.php\\n" \(the worker command names a PHP script that does not exist\)/);
  // text after a good frame
  const after = decodeAll([Buffer.concat([encodeFrame(0, [0], 'ok'), Buffer.from('debug output')])]);
  assert.equal(after.frames.length, 1);
  assert.match(after.errors[0] as string, /it reads "debug output"/);
  // text with a frame right behind it in the same read: the text alone is quoted
  const before = decodeAll([Buffer.concat([Buffer.from('stray output\n'), encodeFrame(0, [0], 'ok')])]);
  assert.equal(before.frames.length, 0);
  assert.match(before.errors[0] as string, /byte 0 = 0x73; .*it reads "stray output\\n" \(the worker printed to stdout/);
  // binary garbage is shown as hex
  assert.match(decodeAll([Buffer.from([0xff, 0, 1, 2])]).errors[0] as string, /first bytes ff000102/);
});

test('decode: stdout ending inside a frame is an error; ending between frames is not', () => {
  const f = encodeFrame(0, [0], 'abcdef');
  assert.deepEqual(decodeAll([f]).errors, []);
  assert.match(decodeAll([f.subarray(0, 5)]).errors[0] as string, /stdout ended inside a frame \(5 of its at least 12 bytes arrived\)/);
  assert.match(decodeAll([f.subarray(0, 17)]).errors[0] as string, /stdout ended inside a frame \(17 of its 22 bytes arrived\)/);
});
