// Validation of frames from workers: untrusted input, checked by hand (fast, one pass) with exactly the
// rules of schemas/worker-frames.schema.json (#/$defs/fromWorker); a test runs both over one table.
// Pure, no I/O. Unknown extra fields are allowed (forward compatibility); wrong types are not.

import type { FromWorkerFrame } from './frames.js';

export type ParsedLine =
  | { kind: 'frame'; frame: FromWorkerFrame }
  /** not JSON, or JSON that is not an object: logged and ignored */
  | { kind: 'not-json'; line: string }
  /** a JSON object that breaks the protocol: a protocol error (id given when the frame named one) */
  | { kind: 'invalid'; error: string; id?: string };

const ACK_HEAD = '{"type":"ack","id":"';

export function parseWorkerLine(line: string): ParsedLine {
  // the answer to nearly every job, as JSON.stringify({type:'ack', id}) writes it, read without
  // JSON.parse when the id is JSON string content as it stands (else the full parse below decides)
  if (line.length > ACK_HEAD.length + 2 && line.startsWith(ACK_HEAD) && line.endsWith('"}') && plainJsonString(line, ACK_HEAD.length, line.length - 2)) {
    return { kind: 'frame', frame: { type: 'ack', id: line.slice(ACK_HEAD.length, -2) } };
  }
  // cheap pre-check: an object line starts with `{` (after optional blanks)
  let i = 0;
  while (i < line.length && (line.charCodeAt(i) === 0x20 || line.charCodeAt(i) === 0x09)) i++;
  if (line.charCodeAt(i) !== 0x7b) return { kind: 'not-json', line };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: 'not-json', line };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'not-json', line };
  const error = checkFrame(value as Record<string, unknown>);
  if (error === undefined) return { kind: 'frame', frame: value as FromWorkerFrame };
  const id = (value as Record<string, unknown>)['id'];
  return typeof id === 'string' && id.length > 0 ? { kind: 'invalid', error, id } : { kind: 'invalid', error };
}

/** line[from, to) is JSON string content with no escapes: no quote, no backslash, no control character */
function plainJsonString(line: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** undefined when the object is a valid frame, else what is wrong with it */
export function checkFrame(f: Record<string, unknown>): string | undefined {
  const type = f['type'];
  if (typeof type !== 'string') return 'frame has no string "type"';
  if (type === 'ready') {
    const max = f['max_concurrency'];
    if (max !== undefined && !(Number.isInteger(max) && (max as number) >= 1)) return 'ready "max_concurrency" must be an integer >= 1';
    return undefined;
  }
  if (type !== 'ack' && type !== 'nack' && type !== 'publish' && type !== 'touch') return `unknown frame type "${cut(type)}"`;
  const id = f['id'];
  if (typeof id !== 'string' || id.length === 0) return `${type} frame has no "id" (a non-empty string)`;
  switch (type) {
    case 'ack':
    case 'touch':
      return undefined;
    case 'nack':
      if (f['error'] !== undefined && typeof f['error'] !== 'string') return 'nack "error" must be a string';
      if (f['requeue'] !== undefined && typeof f['requeue'] !== 'boolean') return 'nack "requeue" must be a boolean';
      if (f['delay'] !== undefined && !isNonNegative(f['delay'])) return 'nack "delay" must be a number of seconds >= 0';
      if (f['headers'] !== undefined && !isHeaders(f['headers'])) return 'nack "headers" must be an object of string arrays';
      return undefined;
    case 'publish': {
      if (typeof f['pipeline'] !== 'string' || f['pipeline'].length === 0) return 'publish "pipeline" must be a non-empty string';
      if (typeof f['job'] !== 'string' || f['job'].length === 0) return 'publish "job" must be a non-empty string';
      if (!('payload' in f)) return 'publish has no "payload"';
      const enc = f['encoding'];
      if (enc !== undefined && enc !== 'json' && enc !== 'text' && enc !== 'base64') return 'publish "encoding" must be json, text or base64';
      if ((enc === 'text' || enc === 'base64') && typeof f['payload'] !== 'string') return `publish payload must be a string with encoding ${enc}`;
      if (enc === 'base64' && !isBase64(f['payload'] as string)) return 'publish payload is not valid base64';
      if (f['headers'] !== undefined && !isHeaders(f['headers'])) return 'publish "headers" must be an object of string arrays';
      if (f['delay'] !== undefined && !isNonNegative(f['delay'])) return 'publish "delay" must be a number of seconds >= 0';
      if (f['priority'] !== undefined && !Number.isInteger(f['priority'])) return 'publish "priority" must be an integer';
      return undefined;
    }
  }
}

function isNonNegative(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function isHeaders(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const key in v) {
    const list = (v as Record<string, unknown>)[key];
    if (!Array.isArray(list)) return false;
    for (const item of list) if (typeof item !== 'string') return false;
  }
  return true;
}

/**
 * Standard base64 with padding, as the schema's pattern says. A loop, not that regular expression:
 * a 20 MB payload overflows the regexp engine's stack.
 */
function isBase64(s: string): boolean {
  const n = s.length;
  if (n % 4 !== 0) return false;
  let pad = 0;
  if (n > 0 && s.charCodeAt(n - 1) === 0x3d) pad = s.charCodeAt(n - 2) === 0x3d ? 2 : 1;
  for (let i = 0; i < n - pad; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f)) return false;
  }
  return true;
}

function cut(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}
