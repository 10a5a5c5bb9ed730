// RoadRunner's wire format (SPEC §6), driver-neutral: header names, the rr_headers JSON encoding,
// and how a delivered message's id, job name and attempt are derived. Both AMQP drivers use these so
// a message means the same thing whichever driver carries it. Pure functions, no I/O.

import { randomUUID } from 'node:crypto';
import type { Headers } from './driver.js';

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
    headers[k] = headerValueToStrings(v);
  }
  return { ok: true, headers };
}

/**
 * Any header / application property value as strings, the way RoadRunner's convHeaders does:
 * numbers and booleans stringified, bytes as UTF-8, arrays flattened, null dropped; amqplib's typed
 * values ({'!': 'timestamp', value}) unwrapped; nested tables as JSON.
 */
export function headerValueToStrings(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return [String(value)];
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return [Buffer.from(value).toString('utf8')];
  if (value instanceof Date) return [value.toISOString()];
  if (Array.isArray(value)) return value.flatMap((v) => headerValueToStrings(v));
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (Object.hasOwn(o, '!') && Object.hasOwn(o, 'value')) {
      if (o['!'] === 'timestamp' && typeof o['value'] === 'number') return [new Date(o['value'] * 1000).toISOString()];
      if (o['!'] === 'decimal' && typeof o['value'] === 'object' && o['value'] !== null) {
        const d = o['value'] as { places?: number; digits?: number };
        if (typeof d.places === 'number' && typeof d.digits === 'number') return [(d.digits / Math.pow(10, d.places)).toFixed(d.places)];
      }
      return headerValueToStrings(o['value']);
    }
    try {
      return [JSON.stringify(value)];
    } catch {
      return [String(value)];
    }
  }
  return [String(value)];
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
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) n = Number(value);
  else if (Buffer.isBuffer(value) && /^\s*\d+\s*$/.test(value.toString('utf8'))) n = Number(value.toString('utf8'));
  else if (Array.isArray(value) && value.length > 0) return toPositiveInt(value[0]);
  else return undefined;
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
