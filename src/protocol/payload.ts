// Message bodies <-> frame payloads (SPEC §4). Pure, no I/O.
// A body that is JSON travels as its JSON value (encoding json), UTF-8 text that is not JSON as a string
// (text), anything else as base64. The common case (a JSON body on one line) is not parsed into objects
// and stringified again: its own text is spliced into the frame line (RawJson), which is what keeps the
// per-message cost low (issue 7).

import { isUtf8 } from 'node:buffer';

/**
 * JSON text known to be valid and free of raw CR/LF, written verbatim into a frame line by encodeFrame.
 * JSON.stringify of an object holding one gives the parsed value, so it is safe to log or re-encode.
 */
export class RawJson {
  readonly text: string;
  private parsed: unknown;
  private hasParsed = false;
  constructor(text: string) {
    this.text = text;
  }
  /** the JSON value (parsed once, on first use) */
  get value(): unknown {
    if (!this.hasParsed) {
      this.parsed = JSON.parse(this.text);
      this.hasParsed = true;
    }
    return this.parsed;
  }
  toJSON(): unknown {
    return this.value;
  }
}

/** How a payload in a frame or a push request is turned into a body (SPEC §4). */
export type Encoding = 'json' | 'text' | 'base64';

export interface EncodedPayload {
  payload: unknown;
  encoding: Encoding;
}

/**
 * Turns a message body into a frame payload. `contentType` is accepted for the future but does not
 * change the choice: SPEC §4 decides by the bytes alone (a JSON body is json whatever it is labelled).
 */
export function bodyToPayload(body: Buffer, _contentType?: string): EncodedPayload {
  if (body.length === 0) return { payload: '', encoding: 'text' };
  if (!isUtf8(body)) return { payload: body.toString('base64'), encoding: 'base64' };
  const text = body.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { payload: text, encoding: 'text' };
  }
  // A raw CR or LF (JSON whitespace between tokens) would end the frame line: re-encode those bodies.
  // The parsed value is not kept: it would live as long as the job (copied by every young-generation GC
  // meanwhile) and is almost never read again; RawJson parses again if it is (issue 7).
  if (text.indexOf('\n') === -1 && text.indexOf('\r') === -1) return { payload: new RawJson(text), encoding: 'json' };
  return { payload: value, encoding: 'json' };
}

export interface DecodedBody {
  body: Buffer;
  contentType: string;
}

/**
 * Turns a publish frame's payload into a body. json (the default): JSON text, application/json;
 * text: the string as UTF-8, text/plain; base64: the decoded bytes, application/octet-stream.
 * Throws TypeError when a text or base64 payload is not a string (validate.ts rejects those first).
 */
export function payloadToBody(payload: unknown, encoding: Encoding = 'json'): DecodedBody {
  switch (encoding) {
    case 'json': {
      const text = payload instanceof RawJson ? payload.text : JSON.stringify(payload === undefined ? null : payload);
      return { body: Buffer.from(text, 'utf8'), contentType: 'application/json' };
    }
    case 'text':
      if (typeof payload !== 'string') throw new TypeError('a text payload must be a string');
      return { body: Buffer.from(payload, 'utf8'), contentType: 'text/plain; charset=utf-8' };
    case 'base64':
      if (typeof payload !== 'string') throw new TypeError('a base64 payload must be a string');
      return { body: Buffer.from(payload, 'base64'), contentType: 'application/octet-stream' };
    default: {
      const never: never = encoding;
      throw new TypeError(`unknown encoding ${String(never)}`);
    }
  }
}
