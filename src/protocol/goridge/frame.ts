// goridge frames (RoadRunner's pipe protocol, docs/protocol-goridge.md): the 12-byte header, options,
// CRC32 of header bytes 0-5, and a streaming decoder for a worker's stdout. Pure, no I/O.
//
// Header: byte 0 = version (1) << 4 | header length in 32-bit words (3 + options); byte 1 = flags;
// bytes 2-5 = payload length (uint32 LE, options not counted); bytes 6-9 = CRC32 (IEEE) of bytes 0-5
// (uint32 LE); byte 10 = stream flags; byte 11 = 0. Then the options (uint32 LE each), then the payload.

import * as zlib from 'node:zlib';

export const VERSION = 1;
export const HEADER_BYTES = 12;
/** goridge allows 10 options (40 bytes); header length 3 + 10 = 13 words */
export const MAX_OPTIONS = 10;

/** byte 1 */
export const CONTROL = 0x01;
export const CODEC_RAW = 0x04;
export const CODEC_JSON = 0x08;
export const ERROR = 0x40;

/** byte 10 */
export const STREAM = 0x01;
export const STREAM_STOP = 0x02;
export const PING = 0x04;
export const PONG = 0x08;

/** Largest payload accepted from a worker (the NDJSON protocol's line limit); larger is a protocol error. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

export interface Frame {
  flags: number;
  options: number[];
  payload: Buffer;
  /** stream flags (byte 10) */
  stream: number;
}

/** CRC32 (IEEE): Node's zlib.crc32 where it exists (20.15+), else a table (engines allow 20.6). */
export const crc32: (data: Uint8Array) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (data) => (zlib as unknown as { crc32(d: Uint8Array): number }).crc32(data) : tableCrc32;

let table: Uint32Array | undefined;

/** The plain table CRC32 (IEEE, reflected 0xEDB88320); exported for the test that compares it with zlib's. */
export function tableCrc32(data: Uint8Array): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = (table[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** One frame as bytes: header, options, payload in one buffer (one write to the pipe). */
export function encodeFrame(flags: number, options: readonly number[], payload: Buffer | string, stream = 0): Buffer {
  if (options.length > MAX_OPTIONS) throw new RangeError(`a goridge frame holds at most ${MAX_OPTIONS} options, not ${options.length}`);
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return encodeParts(flags, options, [body], body.length, stream);
}

/** A frame whose payload is several parts written one after another (context, then body) without a copy of each. */
export function encodeParts(flags: number, options: readonly number[], parts: readonly Buffer[], payloadLength: number, stream = 0): Buffer {
  if (payloadLength > 0xffffffff) throw new RangeError(`a goridge payload is at most 4 GiB, not ${payloadLength} bytes`);
  const headerBytes = HEADER_BYTES + options.length * 4;
  const out = Buffer.allocUnsafe(headerBytes + payloadLength);
  out[0] = (VERSION << 4) | (3 + options.length);
  out[1] = flags & 0xff;
  out.writeUInt32LE(payloadLength, 2);
  out.writeUInt32LE(crc32(out.subarray(0, 6)), 6);
  out[10] = stream & 0xff;
  out[11] = 0;
  for (let i = 0; i < options.length; i++) out.writeUInt32LE(options[i] as number, HEADER_BYTES + i * 4);
  let at = headerBytes;
  for (const p of parts) at += p.copy(out, at);
  if (at !== out.length) throw new RangeError(`payload parts hold ${at - headerBytes} bytes, not ${payloadLength}`);
  return out;
}

/** A control frame (CONTROL | CODEC_JSON) carrying a JSON object: the pid handshake and stop. */
export function encodeControl(value: Record<string, unknown>): Buffer {
  return encodeFrame(CONTROL | CODEC_JSON, [], JSON.stringify(value));
}

export interface DecoderSink {
  frame(frame: Frame): void;
  /**
   * The bytes are not goridge frames: what was wrong, with a hint when the bytes look like text a
   * worker printed. Called once; the decoder ignores everything after it (the worker is replaced).
   */
  error(message: string): void;
}

/**
 * Splits a worker's stdout into frames. Chunks may end anywhere (inside a header, the options or the
 * payload) and one chunk may hold several frames. Every header is checked: version, header length,
 * CRC, payload length.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** bytes the frame at the start of pending needs in all (0: not known yet); spares a concat per chunk */
  private need = 0;
  private broken = false;
  private readonly sink: DecoderSink;
  private readonly maxPayload: number;

  constructor(sink: DecoderSink, maxPayload = MAX_PAYLOAD_BYTES) {
    this.sink = sink;
    this.maxPayload = maxPayload;
  }

  push(chunk: Buffer): void {
    if (this.broken || chunk.length === 0) return;
    if (this.need > 0 && this.pendingBytes + chunk.length < this.need) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      return;
    }
    this.need = 0;
    let buf: Buffer;
    if (this.pendingBytes === 0) {
      buf = chunk;
    } else {
      this.pending.push(chunk);
      buf = Buffer.concat(this.pending, this.pendingBytes + chunk.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    while (!this.broken && at < buf.length) {
      // byte 0 alone tells printed text from a frame: fail at once, not after 12 bytes that may never come
      if (!looksLikeHeaderStart(buf, at)) {
        this.fail(describeByte0(buf[at] as number), buf.subarray(at));
        return;
      }
      if (buf.length - at < HEADER_BYTES) break;
      const problem = checkHeader(buf, at, this.maxPayload);
      if (problem !== undefined) {
        this.fail(problem, buf.subarray(at));
        return;
      }
      const words = (buf[at] as number) & 0x0f;
      const headerBytes = words * 4;
      const total = headerBytes + buf.readUInt32LE(at + 2);
      if (buf.length - at < total) {
        this.need = total;
        break;
      }
      const options: number[] = [];
      for (let o = at + HEADER_BYTES; o < at + headerBytes; o += 4) options.push(buf.readUInt32LE(o));
      this.sink.frame({
        flags: buf[at + 1] as number,
        options,
        payload: buf.subarray(at + headerBytes, at + total),
        stream: buf[at + 10] as number,
      });
      at += total;
    }
    if (!this.broken && at < buf.length) {
      this.pending.push(at === 0 ? buf : buf.subarray(at));
      this.pendingBytes = buf.length - at;
    }
  }

  /** stdout closed: a partial frame left over is an error (the worker died or wrote a short frame). */
  end(): void {
    if (this.broken || this.pendingBytes === 0) return;
    const got = this.pendingBytes;
    this.fail(`stdout ended inside a frame (${got} of its ${this.need > 0 ? this.need : 'at least 12'} bytes arrived)`);
  }

  private fail(problem: string, bytes?: Buffer): void {
    this.broken = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.need = 0;
    this.sink.error(bytes === undefined ? problem : describeBadBytes(problem, bytes));
  }
}

/** undefined when the 12 bytes at `at` are a valid header, else what is wrong */
export function checkHeader(buf: Buffer, at: number, maxPayload = MAX_PAYLOAD_BYTES): string | undefined {
  const b0 = buf[at] as number;
  if (!looksLikeHeaderStart(buf, at)) return describeByte0(b0);
  const want = crc32(buf.subarray(at, at + 6));
  const got = buf.readUInt32LE(at + 6);
  if (want !== got) return `a header with a bad CRC (0x${got.toString(16).padStart(8, '0')}, expected 0x${want.toString(16).padStart(8, '0')})`;
  const length = buf.readUInt32LE(at + 2);
  if (length > maxPayload) return `a payload length of ${length} bytes (the limit is ${maxPayload})`;
  return undefined;
}

function looksLikeHeaderStart(buf: Buffer, at: number): boolean {
  const b0 = buf[at] as number;
  return b0 >> 4 === VERSION && (b0 & 0x0f) >= 3 && (b0 & 0x0f) <= 3 + MAX_OPTIONS;
}

function describeByte0(b0: number): string {
  const version = b0 >> 4;
  const words = b0 & 0x0f;
  if (version !== VERSION) return `a header with version ${version} (byte 0 = 0x${hex(b0)}; goridge frames start with version 1)`;
  return `a header length of ${words} words (byte 0 = 0x${hex(b0)}; 3 to ${3 + MAX_OPTIONS} are valid)`;
}

/**
 * The protocol error's text: what was wrong, and when the bytes are printable, what they say (a worker
 * that echoes to stdout; PHP's own "Could not open input file: ..." when the script path is wrong).
 */
export function describeBadBytes(problem: string, bytes: Buffer): string {
  // the printable start of the bytes: text a worker printed, before any frame that follows it
  let end = 0;
  while (end < bytes.length && end < 200) {
    const c = bytes[end] as number;
    if (!((c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09 || c >= 0x80)) break;
    end++;
  }
  // text starts with an ASCII character; a lone high byte is binary
  if (end > 0 && (bytes[0] as number) >= 0x80) end = 0;
  let message = `stdout carried ${problem}, not a goridge frame`;
  if (end > 0) {
    const text = bytes.toString('utf8', 0, end);
    const shown = JSON.stringify(text.length > 80 ? text.slice(0, 80) + '…' : text);
    message += `: it reads ${shown}`;
    if (text.startsWith('Could not open input file')) message += ' (the worker command names a PHP script that does not exist)';
    else message += " (the worker printed to stdout, which carries only frames: write logs to stderr; RoadRunner's PHP Worker sends echo output to stderr itself)";
  } else if (bytes.length > 0) {
    message += ` (first bytes ${bytes.subarray(0, 16).toString('hex')})`;
  }
  return message;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
