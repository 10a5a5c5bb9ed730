// The lean AMQP 1.0 reader (src/drivers/amqp1/lean-decode.ts) against rhea's own decoding: for every
// shape it reads, the values must be exactly rhea's (same classes, same numbers, same Buffers); for every
// shape it leaves to rhea it must decline (undefined), never guess. Messages and frames are encoded by
// rhea itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import rhea from 'rhea';
import { leanDecodeMessage, leanReadTransferFrame, LeanTransfer, type MessageShapes } from '../../src/drivers/amqp1/lean-decode.js';
import { installLeanFrames, leanFramesInstalled } from '../../src/drivers/amqp1/rhea-patches.js';

type Any = any;
const require = createRequire(import.meta.url);
const rheaDir = dirname(require.resolve('rhea'));
const frames: Any = require(join(rheaDir, 'frames.js'));
const rheaTypes: Any = require(join(rheaDir, 'types.js'));
// taken before anything installs the lean frame reader
const rheaReadFrame: (b: Buffer) => Any = frames.read_frame;

const t = rhea.types as Any;
const MessageClass = (rhea.message.decode(Buffer.alloc(0)) as object).constructor as new () => Record<string, unknown>;
const shapes: MessageShapes = { newMessage: () => new MessageClass(), dataSection: (c) => rhea.message.data_section(c) };

function same(msg: Any, label = ''): void {
  const encoded = rhea.message.encode(msg);
  const lean = leanDecodeMessage(encoded, shapes);
  assert.notEqual(lean, undefined, `lean path declined a shape it should read ${label}`);
  assert.deepStrictEqual(lean, rhea.message.decode(encoded), label);
}

function declines(encoded: Buffer, label: string): void {
  assert.equal(leanDecodeMessage(encoded, shapes), undefined, label);
}

const scalars: Record<string, unknown> = {
  str: 'hello',
  long_str: 'é'.repeat(200), // str32
  empty: '',
  sym: t.wrap_symbol('a-symbol'),
  long_sym: t.wrap_symbol('s'.repeat(300)),
  t: true,
  f: false,
  bool8: t.wrap_boolean(true),
  nil: null,
  ubyte: t.wrap_ubyte(200),
  ushort: t.wrap_ushort(65000),
  uint0: t.wrap_uint(0),
  usmall: t.wrap_uint(7),
  uint: t.wrap_uint(4000000000),
  ulong0: t.wrap_ulong(0),
  ulsmall: t.wrap_ulong(9),
  ulong: t.wrap_ulong(2 ** 40 + 3),
  ulong_huge: t.wrap_ulong(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 1])),
  byte: t.wrap_byte(-5),
  short: t.wrap_short(-30000),
  int: t.wrap_int(-2000000000),
  ismall: t.wrap_int(-3),
  long: t.wrap_long(-(2 ** 40)),
  lsmall: t.wrap_long(100),
  long_huge: t.wrap_long(Buffer.from([0x7f, 0, 0, 0, 0, 0, 0, 1])),
  float: t.wrap_float(1.5),
  double: t.wrap_double(Math.PI),
  ts: t.wrap_timestamp(1795472026248),
  uuid: t.wrap_uuid(Buffer.from('0123456789abcdef0123456789abcdef', 'hex')),
  bin: t.wrap_binary(Buffer.from([1, 2, 3])),
  long_bin: t.wrap_binary(Buffer.alloc(300, 7)), // vbin32
  num: 12, // rhea wraps a JS number as it sees fit
  neg: -1.25,
};

test('lean decode reads what RabbitMQ delivers exactly as rhea does', () => {
  same(
    {
      durable: true,
      first_acquirer: true,
      delivery_count: 2,
      priority: 7,
      ttl: 60000,
      message_annotations: { 'x-exchange': '', 'x-routing-key': 'jobs' },
      message_id: 'c46ca68c-8ba0-438f-be31-86ffe4078721',
      subject: 'ping',
      content_type: 'application/json',
      creation_time: new Date(1795472026248),
      application_properties: { rr_id: 'abc', rr_job: 'ping', rr_priority: t.wrap_long(10), 'x-attempt': t.wrap_int(2) },
      body: rhea.message.data_section(Buffer.from('{"n":1}')),
    },
    'typical',
  );
});

test('lean decode: every scalar type in application properties, annotations and the footer', () => {
  same({ application_properties: scalars, body: rhea.message.data_section(Buffer.from('x')) }, 'application_properties');
  const symbolKeys = Object.fromEntries(Object.entries(scalars).map(([k, v]) => [`x-${k}`, v]));
  same({ message_annotations: symbolKeys, delivery_annotations: symbolKeys, footer: { a: 'b' } }, 'annotations');
});

test('lean decode: every properties and header field, and message ids of each type', () => {
  const full = {
    durable: false,
    priority: 0,
    ttl: 1,
    first_acquirer: false,
    delivery_count: 0,
    message_id: 'id',
    user_id: Buffer.from('guest'),
    to: '/queues/a',
    subject: 's',
    reply_to: '/queues/b',
    correlation_id: 'corr',
    content_type: 'text/plain',
    content_encoding: 'gzip',
    absolute_expiry_time: new Date(2_000_000_000_000),
    creation_time: new Date(1),
    group_id: 'g',
    group_sequence: 4,
    reply_to_group_id: 'rg',
  };
  same(full, 'all fields');
  same({ message_id: 42 }, 'ulong id');
  same({ message_id: t.wrap_uuid(Buffer.alloc(16, 0xab)), correlation_id: t.wrap_ulong(2 ** 33) }, 'uuid id');
  same({ message_id: Buffer.from([0, 1, 2]) }, 'binary id');
  same({}, 'empty message');
});

test('lean decode: bodies (data, empty data, large data, scalar amqp-value)', () => {
  same({ body: rhea.message.data_section(Buffer.alloc(0)) }, 'empty data');
  same({ body: rhea.message.data_section(Buffer.alloc(70_000, 0x61)) }, 'vbin32 data');
  same({ body: 'a string value' }, 'string value');
  same({ body: 12.5 }, 'number value');
  same({ body: null }, 'null value');
  same({ body: Buffer.from('bin') }, 'binary value');
  same({ body: t.wrap_symbol('sym') }, 'symbol value');
});

test('lean decode declines what it leaves to rhea, and rhea still reads it', () => {
  const cases: Array<[string, Any]> = [
    ['sequence body', { body: rhea.message.sequence_section([1, 2]) }],
    ['several data sections', { body: rhea.message.data_sections([Buffer.from('a'), Buffer.from('b')]) }],
    ['map body', { body: { a: 1 } }],
    ['list body', { body: [1, 2, 3] }],
    ['list in application properties', { application_properties: { l: [1, 2] } }],
    ['map in annotations', { message_annotations: { 'x-m': { a: 1 } } }],
    ['described value', { application_properties: { d: t.described(t.wrap_ulong(99), t.wrap_string('x')) } }],
  ];
  for (const [label, msg] of cases) {
    const encoded = rhea.message.encode(msg);
    declines(encoded, label);
    assert.doesNotThrow(() => rhea.message.decode(encoded), label);
  }
  // a symbolic section descriptor (legal AMQP, never sent by RabbitMQ)
  const w = new rheaTypes.Writer();
  w.write(t.described(t.wrap_symbol('amqp:data:binary'), t.wrap_binary(Buffer.from('x'))));
  declines(w.toBuffer(), 'symbolic descriptor');
  // truncated anywhere: declined where rhea fails (and rhea reports its own error), rhea's values where a
  // cut happens to fall between two sections
  const whole = rhea.message.encode({ message_id: 'm', application_properties: { a: 'b' }, body: rhea.message.data_section(Buffer.from('{"n":1}')) });
  let declined = 0;
  for (let n = 1; n < whole.length; n++) {
    const cut = whole.subarray(0, n);
    let theirs: unknown;
    try {
      theirs = rhea.message.decode(cut);
    } catch {
      declines(cut, `truncated to ${n} bytes`);
      declined++;
      continue;
    }
    assert.deepStrictEqual(leanDecodeMessage(cut, shapes), theirs, `cut to ${n} bytes between sections`);
  }
  assert.ok(declined > whole.length / 2, `only ${declined} cuts were errors for rhea`);
});

test('lean decode matches rhea on 2,000 random messages', () => {
  const keys = Object.keys(scalars);
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const props: Record<string, unknown> = {};
    for (let k = rand(8); k > 0; k--) props[`p${rand(20)}`] = scalars[keys[rand(keys.length)]!];
    const msg: Any = { application_properties: props };
    if (rand(2) === 1) msg.message_annotations = { 'x-routing-key': `q${rand(100)}`, 'x-n': scalars[keys[rand(keys.length)]!] };
    if (rand(2) === 1) msg.durable = rand(2) === 1;
    if (rand(3) === 1) msg.message_id = rand(2) === 1 ? `id-${i}` : rand(1000);
    if (rand(3) === 1) msg.delivery_count = rand(5);
    msg.body = rand(4) === 0 ? `text ${i}` : rhea.message.data_section(Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(rand(300)) })));
    same(msg, `random message ${i}`);
  }
});

function transferFrame(fields: Record<string, unknown>, payload?: Buffer, channel = 3): Buffer {
  return frames.write_frame(frames.amqp_frame(channel, frames.transfer(fields).described(), payload));
}

const TRANSFER_FIELDS = ['handle', 'delivery_id', 'delivery_tag', 'message_format', 'settled', 'more', 'rcv_settle_mode', 'state', 'resume', 'aborted', 'batchable'];

function sameFrame(encoded: Buffer, label: string): void {
  const lean = leanReadTransferFrame(encoded);
  assert.ok(lean !== undefined, `lean path declined a transfer it should read (${label})`);
  const orig = rheaReadFrame(encoded);
  assert.equal(lean.size, orig.size, label);
  assert.equal(lean.type, orig.type, label);
  assert.equal(lean.channel, orig.channel, label);
  assert.deepStrictEqual(lean.payload, orig.payload, label);
  assert.equal('payload' in lean, 'payload' in orig, label);
  for (const f of TRANSFER_FIELDS) assert.deepStrictEqual(lean.performative[f as keyof LeanTransfer], orig.performative[f], `${label}: ${f}`);
}

test('lean transfer frames read exactly as rhea reads them', () => {
  const body = rhea.message.encode({ durable: true, body: rhea.message.data_section(Buffer.from('{"n":1}')) });
  sameFrame(transferFrame({ handle: 0, delivery_id: 5, delivery_tag: Buffer.from([0, 0, 0, 1]), message_format: 0, settled: false, more: false }, body), 'typical');
  sameFrame(transferFrame({ handle: 300, delivery_id: 4294967290, delivery_tag: Buffer.alloc(32, 1), more: true }, body, 65000), 'large ids, more');
  sameFrame(transferFrame({ handle: 1 }, body), 'continuation (only the handle)');
  sameFrame(transferFrame({ handle: 1, delivery_id: 1, delivery_tag: Buffer.from('t'), message_format: 0, settled: true, rcv_settle_mode: 1, resume: false, aborted: false, batchable: true }, Buffer.alloc(70_000, 2)), 'all scalar fields');
  sameFrame(transferFrame({ handle: 0, delivery_id: 0, delivery_tag: Buffer.from('t') }), 'no payload');
});

test('lean transfer frames decline other frames and transfers with a delivery state', () => {
  const flow = frames.write_frame(frames.amqp_frame(0, frames.flow({ incoming_window: 10, next_outgoing_id: 1, outgoing_window: 10, handle: 0, link_credit: 5 }).described()));
  assert.equal(leanReadTransferFrame(flow), undefined, 'flow');
  const performative = frames.transfer({ handle: 0, delivery_id: 1, delivery_tag: Buffer.from('t') });
  performative.value[7] = (rhea.message as Any).accepted().described(); // rhea has no setter for a transfer's state
  const withState: Buffer = frames.write_frame(frames.amqp_frame(0, performative.described()));
  assert.equal(leanReadTransferFrame(withState), undefined, 'state');
  assert.ok(rheaReadFrame(withState).performative.state !== undefined);
  const empty = Buffer.from([0, 0, 0, 8, 2, 0, 0, 0]); // a heartbeat
  assert.equal(leanReadTransferFrame(empty), undefined, 'empty frame');
  const sasl = frames.write_frame(frames.sasl_frame(frames.sasl_init({ mechanism: 'ANONYMOUS' }).described()));
  assert.equal(leanReadTransferFrame(sasl), undefined, 'sasl');
  const whole = transferFrame({ handle: 0, delivery_id: 1, delivery_tag: Buffer.from('tag') });
  for (let n = 12; n < whole.length; n++) {
    const cut = Buffer.from(whole.subarray(0, n));
    cut.writeUInt32BE(n, 0);
    assert.equal(leanReadTransferFrame(cut), undefined, `truncated to ${n}`);
  }
});

test('the lean frame reader installs on the pinned rhea and hands other frames to rhea', () => {
  assert.equal(leanFramesInstalled(), false);
  installLeanFrames();
  assert.equal(leanFramesInstalled(), true, 'rhea 3.0.5 expected; see src/drivers/amqp1/rhea-patches.ts');
  const transfer = frames.read_frame(transferFrame({ handle: 0, delivery_id: 1, delivery_tag: Buffer.from('t') }, Buffer.from('p')));
  assert.ok(transfer.performative instanceof LeanTransfer);
  const flow = frames.read_frame(frames.write_frame(frames.amqp_frame(0, frames.flow({ incoming_window: 1, next_outgoing_id: 1, outgoing_window: 1 }).described())));
  assert.ok(!(flow.performative instanceof LeanTransfer));
  assert.equal(flow.performative.incoming_window, 1);
});
