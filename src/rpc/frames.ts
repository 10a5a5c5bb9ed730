// goridge RPC framing (docs/rpc.md): a request is a goridge frame with two options, the sequence number
// and the length of the method name, whose payload is the method name followed by the body; the answer
// carries the same two options and the same layout, with the request's codec flag, or the ERROR flag and
// the error text as the body. Pure, no I/O: the frames themselves are src/protocol/goridge/frame.ts.

import { CODEC_JSON, CODEC_RAW, ERROR, encodeParts, type Frame } from '../protocol/goridge/frame.js';

/** RoadRunner's protobuf codec flag (byte 1), beside the raw and JSON ones of frame.ts */
export const CODEC_PROTO = 0x80;

export type BodyCodec = 'proto' | 'json' | 'raw';

export interface RpcRequest {
  seq: number;
  method: string;
  codec: BodyCodec;
  /** the flag byte to answer with (the request's codec) */
  flags: number;
  body: Buffer;
}

/** A request frame read, or what is wrong with it (answered as an error with the frame's sequence, if any). */
export function readRequest(frame: Frame): { request: RpcRequest } | { error: string; seq: number } {
  const seq = frame.options[0] ?? 0;
  if (frame.options.length !== 2) return { error: `an RPC frame has 2 options (sequence, method length), this one has ${frame.options.length}`, seq };
  const methodLength = frame.options[1] as number;
  if (methodLength === 0 || methodLength > frame.payload.length) {
    return { error: `the method length ${methodLength} does not fit the ${frame.payload.length}-byte payload`, seq };
  }
  const codec = codecOf(frame.flags);
  if (codec === undefined) return { error: `unknown body codec in flags 0x${frame.flags.toString(16)} (protobuf 0x80, JSON 0x08 or raw 0x04)`, seq };
  return {
    request: {
      seq,
      method: frame.payload.toString('utf8', 0, methodLength),
      codec,
      flags: frame.flags & (CODEC_PROTO | CODEC_JSON | CODEC_RAW),
      body: frame.payload.subarray(methodLength),
    },
  };
}

function codecOf(flags: number): BodyCodec | undefined {
  if (flags & CODEC_PROTO) return 'proto';
  if (flags & CODEC_JSON) return 'json';
  if (flags & CODEC_RAW) return 'raw';
  return undefined;
}

/** The answer to a call: options (seq, method length), payload method + body, the request's codec flag. */
export function encodeResponse(seq: number, method: string, flags: number, body: Uint8Array): Buffer {
  const name = Buffer.from(method, 'utf8');
  const data = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return encodeParts(flags, [seq, name.length], [name, data], name.length + data.length);
}

/** An error answer: the ERROR flag, the error text after the method name. */
export function encodeError(seq: number, method: string, message: string): Buffer {
  const name = Buffer.from(method, 'utf8');
  const text = Buffer.from(message, 'utf8');
  return encodeParts(ERROR, [seq, name.length], [name, text], name.length + text.length);
}
