// A tiny AMQP 0-9-1 frame reader for tests: from the bytes a broker sent (seen through the TCP proxy's tap)
// it pulls the headers table of every content header frame with each field's type tag, so a test can
// check the exact wire types (amqplib's decoder turns int32 and int64 alike into JS numbers).

export interface TypedField {
  /** RabbitMQ's field-table tag: S string, x bytes, I int32, l int64, t bool, b int8, s int16, ... */
  tag: string;
  value: unknown;
}

/** Every content header frame's headers table, in order. */
export function contentHeaderTables(stream: Buffer): Record<string, TypedField>[] {
  const tables: Record<string, TypedField>[] = [];
  let off = 0;
  while (off + 7 <= stream.length) {
    const type = stream.readUInt8(off);
    const size = stream.readUInt32BE(off + 3);
    if (off + 7 + size + 1 > stream.length) break;
    const payload = stream.subarray(off + 7, off + 7 + size);
    off += 7 + size + 1;
    if (type !== 2) continue;
    // class-id(2) weight(2) body-size(8) property-flags(2)
    const flags = payload.readUInt16BE(12);
    let p = 14;
    if (flags & 0x8000) p += 1 + payload.readUInt8(p); // content-type shortstr
    if (flags & 0x4000) p += 1 + payload.readUInt8(p); // content-encoding shortstr
    if (!(flags & 0x2000)) {
      tables.push({});
      continue;
    }
    const len = payload.readUInt32BE(p);
    tables.push(readTable(payload.subarray(p + 4, p + 4 + len)));
  }
  return tables;
}

function readTable(buf: Buffer): Record<string, TypedField> {
  const out: Record<string, TypedField> = {};
  let off = 0;
  while (off < buf.length) {
    const klen = buf.readUInt8(off);
    const key = buf.toString('utf8', off + 1, off + 1 + klen);
    off += 1 + klen;
    const [field, next] = readValue(buf, off);
    out[key] = field;
    off = next;
  }
  return out;
}

function readValue(buf: Buffer, off: number): [TypedField, number] {
  const tag = String.fromCharCode(buf.readUInt8(off));
  off++;
  switch (tag) {
    case 'S':
    case 'x': {
      const len = buf.readUInt32BE(off);
      const raw = buf.subarray(off + 4, off + 4 + len);
      return [{ tag, value: tag === 'S' ? raw.toString('utf8') : Buffer.from(raw) }, off + 4 + len];
    }
    case 't':
      return [{ tag, value: buf.readUInt8(off) !== 0 }, off + 1];
    case 'b':
      return [{ tag, value: buf.readInt8(off) }, off + 1];
    case 'B':
      return [{ tag, value: buf.readUInt8(off) }, off + 1];
    case 's':
      return [{ tag, value: buf.readInt16BE(off) }, off + 2];
    case 'u':
      return [{ tag, value: buf.readUInt16BE(off) }, off + 2];
    case 'I':
      return [{ tag, value: buf.readInt32BE(off) }, off + 4];
    case 'i':
      return [{ tag, value: buf.readUInt32BE(off) }, off + 4];
    case 'l':
      return [{ tag, value: Number(buf.readBigInt64BE(off)) }, off + 8];
    case 'T':
      return [{ tag, value: Number(buf.readBigUInt64BE(off)) }, off + 8];
    case 'd':
      return [{ tag, value: buf.readDoubleBE(off) }, off + 8];
    case 'f':
      return [{ tag, value: buf.readFloatBE(off) }, off + 4];
    case 'D':
      return [{ tag, value: { places: buf.readUInt8(off), digits: buf.readUInt32BE(off + 1) } }, off + 5];
    case 'V':
      return [{ tag, value: null }, off];
    case 'F': {
      const len = buf.readUInt32BE(off);
      return [{ tag, value: readTable(buf.subarray(off + 4, off + 4 + len)) }, off + 4 + len];
    }
    case 'A': {
      const len = buf.readUInt32BE(off);
      const end = off + 4 + len;
      const items: TypedField[] = [];
      let p = off + 4;
      while (p < end) {
        const [f, n] = readValue(buf, p);
        items.push(f);
        p = n;
      }
      return [{ tag, value: items }, end];
    }
    default:
      throw new Error(`amqp-frames: unknown field tag ${JSON.stringify(tag)}`);
  }
}
