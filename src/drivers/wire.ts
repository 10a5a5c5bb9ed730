// RoadRunner's wire format (SPEC §6), driver-neutral: header names, the rr_headers JSON encoding,
// and how a delivered message's id, job name and attempt are derived. Both AMQP drivers use these so
// a message means the same thing whichever driver carries it. Pure functions, no I/O.

import { randomUUID } from 'node:crypto';
import type { Headers, Job, OutgoingJob } from './driver.js';

/** RoadRunner's headers (github.com/roadrunner-server/api jobs.RR*), with the AMQP types RoadRunner uses. */
export const RR_ID = 'rr_id'; // string
export const RR_JOB = 'rr_job'; // string
export const RR_PIPELINE = 'rr_pipeline'; // string
export const RR_HEADERS = 'rr_headers'; // JSON {k:[v]} as bytes
export const RR_DELAY = 'rr_delay'; // int32, seconds
export const RR_PRIORITY = 'rr_priority'; // int64
export const RR_AUTO_ACK = 'rr_auto_ack'; // bool

/** Every rr_* header: these are decoded, never passed to the worker as plain headers. */
export const RR_HEADER_NAMES: readonly string[] = [RR_ID, RR_JOB, RR_PIPELINE, RR_HEADERS, RR_DELAY, RR_PRIORITY, RR_AUTO_ACK];

/** jobrunner's own attempt counter (SPEC §5). */
export const ATTEMPT_HEADER = 'x-jobrunner-attempt';
/** RabbitMQ quorum queues count earlier deliveries of a message here (absent on the first one). */
export const DELIVERY_COUNT_HEADER = 'x-delivery-count';
/** W3C trace context, carried as a header. */
export const TRACEPARENT_HEADER = 'traceparent';
/** Why a message was dead-lettered by jobrunner (set in OutgoingJob.extra by src/pipelines/). */
export const DEAD_REASON_HEADER = 'x-jobrunner-dead-reason';

/** Says what publishable() changed in a copy so the broker could carry it (e.g. a header dropped). */
export const NORMALISED_HEADER = 'x-jobrunner-normalised';
/** rr_headers once JSON-encoded stay under this (AMQP 0-9-1 header tables are 64 KiB at most in amqplib). */
export const MAX_HEADERS_BYTES = 32 * 1024;
const INT32_MAX = 2 ** 31 - 1;
const MAX_NAME_BYTES = 4096;
const MAX_TRACEPARENT = 512;

/**
 * An outgoing job the brokers can always carry (SPEC §5: a retry or dead-letter copy must never fail for
 * its own content): the priority an integer within ±2^53 (rr_priority is int64), the attempt and the delay
 * within int32 (x-jobrunner-attempt, rr_delay), a job name and traceparent of sane length, and the
 * headers within MAX_HEADERS_BYTES once JSON-encoded (the largest dropped first). What was changed is said
 * in the header x-jobrunner-normalised. A job that needs nothing is returned as it is.
 */
export function publishable(job: OutgoingJob): OutgoingJob {
  const notes: string[] = [];
  const out: OutgoingJob = { ...job };
  if (job.priority !== undefined) {
    const p = job.priority;
    if (!Number.isFinite(p)) {
      delete out.priority;
      notes.push(`priority ${String(p)} dropped`);
    } else if (!Number.isInteger(p) || Math.abs(p) > Number.MAX_SAFE_INTEGER) {
      out.priority = Math.max(-Number.MAX_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Math.trunc(p)));
      notes.push(`priority ${String(p)} made ${out.priority}`);
    }
  }
  if (job.attempt !== undefined && !(Number.isInteger(job.attempt) && job.attempt >= 0 && job.attempt <= INT32_MAX)) {
    out.attempt = Number.isFinite(job.attempt) ? Math.max(0, Math.min(INT32_MAX, Math.trunc(job.attempt))) : INT32_MAX;
    notes.push(`attempt ${String(job.attempt)} made ${out.attempt}`);
  }
  if (!(Number.isFinite(job.delayMs) && job.delayMs >= 0 && job.delayMs / 1000 <= INT32_MAX)) {
    out.delayMs = Number.isFinite(job.delayMs) && job.delayMs > 0 ? INT32_MAX * 1000 : 0;
    notes.push(`delay ${String(job.delayMs)} ms made ${out.delayMs} ms`);
  }
  if (Buffer.byteLength(job.job) > MAX_NAME_BYTES) {
    out.job = cutUtf8(job.job, MAX_NAME_BYTES);
    notes.push(`job name cut to ${MAX_NAME_BYTES} bytes`);
  }
  if (Buffer.byteLength(job.contentType) > 255) {
    out.contentType = 'application/octet-stream';
    notes.push('content type longer than 255 bytes replaced');
  }
  if (job.traceparent !== undefined && job.traceparent.length > MAX_TRACEPARENT) {
    delete out.traceparent;
    notes.push('traceparent dropped (too long)');
  }
  const sizes = Object.keys(job.headers).map((k): [string, number] => [k, Buffer.byteLength(JSON.stringify({ [k]: job.headers[k] }))]);
  let total = sizes.reduce((n, [, size]) => n + size, 2);
  if (total > MAX_HEADERS_BYTES) {
    const headers = { ...job.headers };
    const dropped: string[] = [];
    for (const [k, size] of sizes.sort((a, b) => b[1] - a[1])) {
      if (total <= MAX_HEADERS_BYTES) break;
      delete headers[k];
      dropped.push(k.slice(0, 64));
      total -= size;
    }
    out.headers = headers;
    notes.push(`headers dropped (over ${MAX_HEADERS_BYTES} bytes together): ${dropped.join(', ')}`);
  }
  if (notes.length === 0) return job;
  out.extra = { ...job.extra, [NORMALISED_HEADER]: cutUtf8(notes.join('; '), 1024) };
  return out;
}

/** `text` cut to at most `bytes` UTF-8 bytes, never inside a character. */
export function cutUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text) <= bytes) return text;
  return Buffer.from(text).subarray(0, bytes).toString('utf8').replace(/\uFFFD$/, '');
}

/** rr_headers value: JSON `{k:[v]}` as UTF-8 bytes, as RoadRunner's Go code marshals map[string][]string. */
export function encodeRrHeaders(headers: Headers): Buffer {
  return Buffer.from(JSON.stringify(headers), 'utf8');
}

export type DecodedRrHeaders = { ok: true; headers: Headers } | { ok: false; error: string };

/**
 * Parses an rr_headers value (bytes, or a string when a producer sent it as one). A value that is not
 * JSON, or not a JSON object, is an error the pipeline turns into a dead letter with the reason.
 * Values are made lists of strings: a bare string becomes [s], numbers and booleans are stringified.
 */
export function decodeRrHeaders(value: unknown): DecodedRrHeaders {
  let text: string;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) text = Buffer.from(value).toString('utf8');
  else if (typeof value === 'string') text = value;
  else return { ok: false, error: `rr_headers is not JSON: a ${describe(value)}, not bytes` };
  if (text.trim() === '') return { ok: true, headers: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `rr_headers is not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  // Go marshals a nil map as null
  if (parsed === null) return { ok: true, headers: {} };
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, error: `rr_headers is not JSON: expected an object {"key":["value"]}, got ${describe(parsed)}` };
  }
  const headers: Headers = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    try {
      headers[k] = headerValueToStrings(v);
    } catch (err) {
      if (!(err instanceof BadHeaderError)) throw err;
      return { ok: false, error: `rr_headers key ${JSON.stringify(k.slice(0, 64))}: ${err.message}` };
    }
  }
  return { ok: true, headers };
}

/** How deep a header value may nest (arrays in arrays, tables in tables); deeper is a bad message. */
export const MAX_HEADER_DEPTH = 32;

/**
 * A header value jobrunner cannot turn into strings (nested deeper than MAX_HEADER_DEPTH). Thrown by
 * headerValueToStrings; decoders catch it and make the delivery invalid (a dead letter with the reason).
 */
export class BadHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadHeaderError';
  }
}

/**
 * Any header / application property value as strings, the way RoadRunner's convHeaders does:
 * numbers and booleans stringified, bytes as UTF-8, arrays flattened, null dropped; amqplib's typed
 * values ({'!': 'timestamp', value}) unwrapped; nested tables as JSON. Iterative, with a depth bound:
 * a hostile header (thousands of nested arrays) throws BadHeaderError instead of overflowing the stack.
 */
export function headerValueToStrings(value: unknown): string[] {
  // the common case first, no allocation beyond the answer
  if (typeof value === 'string') return [value];
  const out: string[] = [];
  // a stack of [value, depth]; arrays are pushed in reverse so the output keeps their order
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > MAX_HEADER_DEPTH) throw new BadHeaderError(`a header value nests deeper than ${MAX_HEADER_DEPTH} levels`);
    if (v === null || v === undefined) continue;
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') out.push(String(v));
    else if (Buffer.isBuffer(v) || v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'));
    else if (v instanceof Date) out.push(v.toISOString());
    else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], depth + 1]);
    } else if (typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (Object.hasOwn(o, '!') && Object.hasOwn(o, 'value')) {
        if (o['!'] === 'timestamp' && typeof o['value'] === 'number') {
          out.push(new Date(o['value'] * 1000).toISOString());
          continue;
        }
        if (o['!'] === 'decimal' && typeof o['value'] === 'object' && o['value'] !== null) {
          const d = o['value'] as { places?: number; digits?: number };
          if (typeof d.places === 'number' && typeof d.digits === 'number') {
            out.push((d.digits / Math.pow(10, d.places)).toFixed(d.places));
            continue;
          }
        }
        stack.push([o['value'], depth + 1]);
        continue;
      }
      // JSON.stringify recurses: measure the depth first, without recursion
      assertShallow(o, MAX_HEADER_DEPTH - depth);
      try {
        out.push(JSON.stringify(o, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));
      } catch {
        out.push(String(o));
      }
    } else out.push(String(v));
  }
  return out;
}

/** Throws BadHeaderError when `value` nests deeper than `max` levels (iterative: never overflows). */
function assertShallow(value: unknown, max: number): void {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null || Buffer.isBuffer(v) || v instanceof Uint8Array || v instanceof Date) continue;
    if (depth > max) throw new BadHeaderError(`a header value nests deeper than ${MAX_HEADER_DEPTH} levels`);
    for (const x of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push([x, depth + 1]);
  }
}

/**
 * Every header of a message as strings (decoders' loop over AMQP headers / application properties):
 * a value that cannot be read is left out and named in `bad`, so the delivery is dead-lettered with the
 * reason, and its copy carries every other header.
 */
export function headersToStrings(source: Record<string, unknown>, skip: readonly string[], into: Headers = {}): { headers: Headers; bad: string | undefined } {
  let bad: string | undefined;
  for (const k of Object.keys(source)) {
    if (skip.includes(k)) continue;
    try {
      const strings = headerValueToStrings(source[k]);
      if (strings.length > 0) into[k] = strings;
    } catch (err) {
      if (!(err instanceof BadHeaderError)) throw err;
      bad ??= `header ${JSON.stringify(k.slice(0, 64))}: ${err.message}`;
    }
  }
  return { headers: into, bad };
}

/**
 * The Job fields of a delivery that could not be decoded at all (a decoder threw): the pipeline
 * dead-letters it with the reason. Decoding must never throw into a driver's consume callback.
 */
export function undecodable(source: { rrId?: unknown; messageId?: unknown; body: Buffer; queue: string; pipeline: string; attempt?: unknown; redelivered?: boolean }, err: unknown): Job & { invalid: string } {
  let id: string;
  try {
    id = idOf({ rrId: source.rrId, messageId: source.messageId });
  } catch {
    id = randomUUID();
  }
  return {
    id,
    job: source.pipeline,
    body: source.body,
    headers: {},
    attempt: attemptOf({ attemptHeader: source.attempt }),
    redelivered: source.redelivered ?? false,
    queue: source.queue,
    invalid: `the message cannot be decoded: ${err instanceof Error ? err.message : String(err)}`.slice(0, 512),
  };
}

/** Headers merged: later sources add values to earlier keys (RoadRunner appends). */
export function mergeHeaders(...sources: Headers[]): Headers {
  const out: Headers = {};
  for (const src of sources) {
    for (const k of Object.keys(src)) {
      const v = src[k] as string[];
      const prev = out[k];
      out[k] = prev === undefined ? v.slice() : prev.concat(v);
    }
  }
  return out;
}

/** The job id: rr_id, else the message_id property, else a new UUID. */
export function idOf(source: { rrId?: unknown; messageId?: unknown }, newId: () => string = randomUUID): string {
  if (typeof source.rrId === 'string' && source.rrId !== '') return source.rrId;
  const mid = source.messageId;
  if (typeof mid === 'string' && mid !== '') return mid;
  if (typeof mid === 'number' || typeof mid === 'bigint') return String(mid);
  if (Buffer.isBuffer(mid) && mid.length > 0) return mid.toString('utf8');
  return newId();
}

/** The job name: rr_job, else the type property (AMQP 1.0: subject), else the pipeline's `job`, else its name. */
export function jobNameOf(source: { rrJob?: unknown; type?: unknown; pipelineJob?: string | undefined; pipeline: string }): string {
  if (typeof source.rrJob === 'string' && source.rrJob !== '') return source.rrJob;
  if (Buffer.isBuffer(source.rrJob) && source.rrJob.length > 0) return source.rrJob.toString('utf8');
  if (typeof source.type === 'string' && source.type !== '') return source.type;
  if (source.pipelineJob !== undefined && source.pipelineJob !== '') return source.pipelineJob;
  return source.pipeline;
}

/**
 * The attempt number, 1 for a first delivery: the larger of x-jobrunner-attempt and the broker's count
 * of earlier deliveries + 1 (quorum queues' x-delivery-count, AMQP 1.0 delivery-count).
 */
export function attemptOf(source: { attemptHeader?: unknown; priorDeliveries?: unknown }): number {
  const fromHeader = toPositiveInt(source.attemptHeader);
  const prior = toPositiveInt(source.priorDeliveries);
  return Math.max(1, fromHeader ?? 1, prior === undefined ? 1 : prior + 1);
}

function toPositiveInt(value: unknown): number | undefined {
  // a list holds the count first (a header sent as [3]); a few levels at most, never recursion
  for (let i = 0; i < 4 && Array.isArray(value); i++) value = value.length > 0 ? value[0] : undefined;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) n = Number(value);
  else if (Buffer.isBuffer(value) && /^\s*\d+\s*$/.test(value.toString('utf8'))) n = Number(value.toString('utf8'));
  else return undefined;
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
