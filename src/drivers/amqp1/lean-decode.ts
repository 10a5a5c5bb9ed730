// A lean reader for the two things the amqp1 driver decodes once per message (issue 7): the transfer
// frame and the message in it. rhea reads both through its general typed reader: every field becomes a
// Typed object in an array, then is unwrapped again (a composite with getters for the performative, an
// object per section for the message), and a CPU profile of the daemon put ~20% of its busy time there,
// plus the garbage. This reads the same bytes straight into the values rhea would produce, for the
// shapes brokers actually send: scalar fields, string-keyed maps of scalars, one data section or a
// scalar amqp-value body. Anything else (described values, lists, arrays, decimals, several data
// sections, sequences, symbolic descriptors, a malformed or truncated buffer) makes it answer
// `undefined`, and the caller hands the buffer to rhea as before; rhea then decodes it, or throws its own
// error. test/drivers/amqp1-lean-decode.test.ts checks value for value against rhea's own decoding.

/** thrown inside this module only, when a buffer holds something the lean path leaves to rhea */
const UNSUPPORTED = new Error('lean-decode: not a lean shape');

const MAX_UINT = 4294967296;

const EMPTY = Buffer.alloc(0);

// the buffer being read, the read position and the end: module state, one decode at a time (synchronous)
let buf: Buffer = EMPTY;
let pos = 0;
let end = 0;

function need(n: number): void {
  if (pos + n > end) throw UNSUPPORTED;
}

/** moves past n bytes that are there (else UNSUPPORTED); true, so a fixed-width read can follow with && */
function advance(n: number): true {
  need(n);
  pos += n;
  return true;
}

/** rhea's read_ulong: a number below 2^53, else the 8 bytes */
function readUlong(): number | Buffer {
  need(8);
  const hi = buf.readUInt32BE(pos);
  const lo = buf.readUInt32BE(pos + 4);
  pos += 8;
  return hi < 2097153 ? hi * MAX_UINT + lo : buf.subarray(pos - 8, pos);
}

/** rhea's read_long: a number within ±2^53, else the 8 bytes */
function readLong(): number | Buffer {
  need(8);
  const hi = buf.readInt32BE(pos);
  const lo = buf.readUInt32BE(pos + 4);
  pos += 8;
  return hi < 2097153 && hi > -2097153 ? hi * MAX_UINT + lo : buf.subarray(pos - 8, pos);
}

function readBytes(width: 1 | 4): Buffer {
  need(width);
  const size = width === 1 ? buf[pos]! : buf.readUInt32BE(pos);
  pos += width;
  need(size);
  pos += size;
  return buf.subarray(pos - size, pos);
}

function readText(width: 1 | 4, encoding: 'utf8' | 'ascii'): string {
  need(width);
  const size = width === 1 ? buf[pos]! : buf.readUInt32BE(pos);
  pos += width;
  need(size);
  pos += size;
  return buf.toString(encoding, pos - size, pos);
}

/** One scalar, as rhea's types.unwrap gives it (0x56 booleans stay numbers there, so here too). */
function readScalar(): unknown {
  need(1);
  const code = buf[pos++];
  switch (code) {
    case 0x40:
      return null;
    case 0x41:
      return true;
    case 0x42:
      return false;
    case 0x43: // uint0
    case 0x44: // ulong0
      return 0;
    case 0x50: // ubyte
    case 0x52: // smalluint
    case 0x53: // smallulong
    case 0x56: // boolean (rhea reads the byte)
      need(1);
      return buf[pos++];
    case 0x51: // byte
    case 0x54: // smallint
    case 0x55: // smalllong
      need(1);
      return buf.readInt8(pos++);
    case 0x60:
      return advance(2) && buf.readUInt16BE(pos - 2);
    case 0x61:
      return advance(2) && buf.readInt16BE(pos - 2);
    case 0x70:
      return advance(4) && buf.readUInt32BE(pos - 4);
    case 0x71:
      return advance(4) && buf.readInt32BE(pos - 4);
    case 0x72:
      return advance(4) && buf.readFloatBE(pos - 4);
    case 0x80:
      return readUlong();
    case 0x81:
      return readLong();
    case 0x82:
      return advance(8) && buf.readDoubleBE(pos - 8);
    case 0x83:
      return new Date(readLong() as number);
    case 0x98:
      need(16);
      pos += 16;
      return buf.subarray(pos - 16, pos);
    case 0xa0:
      return readBytes(1);
    case 0xb0:
      return readBytes(4);
    case 0xa1:
      return readText(1, 'utf8');
    case 0xb1:
      return readText(4, 'utf8');
    case 0xa3:
      return readText(1, 'ascii');
    case 0xb3:
      return readText(4, 'ascii');
    default:
      // described values, lists, maps, arrays, chars, decimals: rhea's
      throw UNSUPPORTED;
  }
}

/** the element count of a list (0x45, 0xc0, 0xd0); the bytes that follow are its elements */
function readListCount(): number {
  need(1);
  const code = buf[pos++];
  if (code === 0x45) return 0;
  if (code === 0xc0) {
    need(2);
    pos += 2;
    return buf[pos - 1]!;
  }
  if (code === 0xd0) {
    need(8);
    pos += 8;
    return buf.readUInt32BE(pos - 4);
  }
  throw UNSUPPORTED;
}

/** a map of string or symbol keys to scalars, as rhea's unwrap_map_simple builds it */
function readMap(): Record<string, unknown> {
  need(1);
  const code = buf[pos++];
  let count: number;
  if (code === 0xc1) {
    need(2);
    count = buf[pos + 1]!;
    pos += 2;
  } else if (code === 0xd1) {
    need(8);
    count = buf.readUInt32BE(pos + 4);
    pos += 8;
  } else {
    throw UNSUPPORTED;
  }
  const result: Record<string, unknown> = {};
  for (let i = 0; i + 1 < count; i += 2) {
    const key = readScalar();
    if (typeof key !== 'string') throw UNSUPPORTED;
    result[key] = readScalar();
  }
  if (count % 2 === 1) readScalar(); // rhea reads and drops an odd last element
  return result;
}

/** the numeric descriptor of a described value (0x00 then smallulong or ulong); symbolic ones are rhea's */
function readDescriptor(): number {
  need(2);
  if (buf[pos] !== 0x00) throw UNSUPPORTED;
  const code = buf[pos + 1];
  pos += 2;
  if (code === 0x53) {
    need(1);
    return buf[pos++]!;
  }
  if (code === 0x80) {
    need(8);
    pos += 8;
    if (buf.readUInt32BE(pos - 8) !== 0) throw UNSUPPORTED;
    return buf.readUInt32BE(pos - 4);
  }
  throw UNSUPPORTED;
}

const HEADER_FIELDS = ['durable', 'priority', 'ttl', 'first_acquirer', 'delivery_count'] as const;
const PROPERTIES_FIELDS = [
  'message_id',
  'user_id',
  'to',
  'subject',
  'reply_to',
  'correlation_id',
  'content_type',
  'content_encoding',
  'absolute_expiry_time',
  'creation_time',
  'group_id',
  'group_sequence',
  'reply_to_group_id',
] as const;
const MAP_SECTIONS: Record<number, string> = { 0x71: 'delivery_annotations', 0x72: 'message_annotations', 0x74: 'application_properties', 0x78: 'footer' };

/** a composite section's fields onto the message, skipping null and absent ones (rhea's unwrap) */
function readComposite(msg: Record<string, unknown>, fields: readonly string[]): void {
  const count = readListCount();
  for (let i = 0; i < count; i++) {
    const v = readScalar();
    if (i < fields.length && v !== null) msg[fields[i]!] = v;
  }
}

/** what rhea builds a message from: its Message class and its data section maker */
export interface MessageShapes {
  newMessage(): Record<string, unknown>;
  dataSection(content: Buffer): unknown;
}

/**
 * The message in `data` as rhea's message.decode would return it, or undefined when it holds a shape
 * left to rhea (see the top of this file). Never throws.
 */
export function leanDecodeMessage(data: Buffer, shapes: MessageShapes): Record<string, unknown> | undefined {
  buf = data;
  pos = 0;
  end = data.length;
  try {
    const msg = shapes.newMessage();
    let hasBody = false;
    while (pos < end) {
      const d = readDescriptor();
      if (d === 0x75) {
        need(1);
        const code = buf[pos++];
        if (hasBody || (code !== 0xa0 && code !== 0xb0)) throw UNSUPPORTED;
        msg.body = shapes.dataSection(readBytes(code === 0xa0 ? 1 : 4));
        hasBody = true;
      } else if (d === 0x77) {
        if (hasBody) throw UNSUPPORTED;
        msg.body = readScalar();
        hasBody = true;
      } else if (d === 0x70) {
        readComposite(msg, HEADER_FIELDS);
      } else if (d === 0x73) {
        readComposite(msg, PROPERTIES_FIELDS);
      } else {
        const name = MAP_SECTIONS[d];
        if (name === undefined) throw UNSUPPORTED;
        msg[name] = readMap();
      }
    }
    return msg;
  } catch {
    return undefined;
  } finally {
    buf = EMPTY;
  }
}


/**
 * A transfer performative with the fields and the dispatch of rhea's composite, as plain properties
 * (rhea's are getters that unwrap a Typed each time they are read). Absent fields are undefined and
 * encoded nulls null, as rhea's getters give them.
 */
export class LeanTransfer {
  handle: unknown;
  delivery_id: unknown;
  delivery_tag: unknown;
  message_format: unknown;
  settled: unknown;
  more: unknown;
  rcv_settle_mode: unknown;
  state: unknown;
  resume: unknown;
  aborted: unknown;
  batchable: unknown;

  constructor(v: unknown[]) {
    this.handle = v[0];
    this.delivery_id = v[1];
    this.delivery_tag = v[2];
    this.message_format = v[3];
    this.settled = v[4];
    this.more = v[5];
    this.rcv_settle_mode = v[6];
    this.state = v[7];
    this.resume = v[8];
    this.aborted = v[9];
    this.batchable = v[10];
  }

  dispatch(target: { on_transfer(frame: unknown): void }, frame: unknown): void {
    target.on_transfer(frame);
  }

  /** as rhea's composites print themselves in its frame log (DEBUG=rhea:frames): the set fields */
  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this)) if (v) o[k] = v;
    return o;
  }
}

const TRANSFER = 0x14;
const TRANSFER_FIELDS = 11;

export interface LeanFrame {
  size: number;
  type: number;
  channel: number;
  performative: LeanTransfer;
  payload?: Buffer;
}

/**
 * One whole frame (as rhea's Transport hands it to frames.read_frame) read the lean way when it is an
 * AMQP transfer with scalar fields (no delivery state); undefined for anything else, which rhea reads.
 * Never throws.
 */
export function leanReadTransferFrame(frame: Buffer): LeanFrame | undefined {
  if (frame.length < 12) return undefined;
  const size = frame.readUInt32BE(0);
  const doff = frame[4]!;
  // AMQP frames only, whole, with a performative after the header
  if (frame[5] !== 0x00 || doff < 2 || size > frame.length || doff * 4 + 2 > frame.length) return undefined;
  buf = frame;
  pos = doff * 4;
  end = frame.length;
  try {
    if (readDescriptor() !== TRANSFER) return undefined;
    const count = readListCount();
    const values: unknown[] = new Array(TRANSFER_FIELDS);
    for (let i = 0; i < count; i++) {
      const v = readScalar();
      if (i < TRANSFER_FIELDS) values[i] = v;
    }
    const out: LeanFrame = { size, type: 0, channel: frame.readUInt16BE(6), performative: new LeanTransfer(values) };
    if (pos < end) out.payload = frame.subarray(pos, end);
    return out;
  } catch {
    return undefined;
  } finally {
    buf = EMPTY;
  }
}
