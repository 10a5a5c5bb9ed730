// JetStream messages <-> jobs in RoadRunner's nats wire format: the body is RoadRunner's JSON envelope
// {job, id, payload (base64 bytes, as Go marshals []byte), options: {priority, pipeline, delay, auto_ack}}
// and the job's headers travel as NATS headers (RoadRunner's nats driver reads them from there). A body that
// is not that envelope (any other producer, including a JSON object of another shape) is a job all the same:
// the whole body is its payload. Pure functions, no I/O.

import type { Headers, Job, OutgoingJob } from '../driver.js';
import { ATTEMPT_HEADER, RR_HEADER_NAMES, RR_HEADERS, RR_ID, RR_JOB, TRACEPARENT_HEADER, attemptOf, decodeRrHeaders, idOf, jobNameOf } from '../wire.js';

/** JetStream's de-duplication header: the server drops a second message with the same id in its window. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';
/** The body's content type (RoadRunner's envelope has none; RoadRunner workers see it as a plain header). */
export const CONTENT_TYPE_HEADER = 'content-type';
/** RoadRunner's nats driver adds the subject a message came on as this header. */
export const SUBJECT_HEADER = 'x-nats-subject';

/**
 * What the server adds to a message a schedule produced (a delayed push on 2.12+): the schedule's subject,
 * and `purge`. Not job headers: a worker sees a delayed job the same on every server.
 */
export const SCHEDULER_HEADER = 'Nats-Scheduler';
export const SCHEDULE_NEXT_HEADER = 'Nats-Schedule-Next';

/** Headers jobrunner (or the server, for it) sets: never handed to the worker as job headers. */
const INTERNAL = new Set<string>([MSG_ID_HEADER.toLowerCase(), SCHEDULER_HEADER.toLowerCase(), SCHEDULE_NEXT_HEADER.toLowerCase(), ATTEMPT_HEADER, CONTENT_TYPE_HEADER, TRACEPARENT_HEADER, ...RR_HEADER_NAMES]);

/** RoadRunner's Item as JSON (natsjobs/item.go). */
interface Envelope {
  job: string;
  id: string;
  payload: string | null;
  headers?: Record<string, unknown>;
  options?: { priority?: number; pipeline?: string; delay?: number; auto_ack?: boolean };
}

export interface EncodedMessage {
  data: Uint8Array;
  /** header name -> values, in order */
  headers: [string, string][];
  msgId: string;
}

/**
 * The envelope and headers of a job. `msgId` is the job id for a first publish (so the server drops a
 * duplicate push of the same id), and unique per attempt for a re-publish of the same job (a retry or a
 * dead-letter copy must never be dropped as a duplicate of the message it replaces).
 */
export function encodeJob(job: OutgoingJob, defaultPriority: number): EncodedMessage {
  const envelope: Envelope = {
    job: job.job,
    id: job.id,
    payload: job.body.toString('base64'),
    options: { priority: job.priority ?? defaultPriority, pipeline: job.pipeline, delay: Math.max(0, Math.round(job.delayMs / 1000)), auto_ack: false },
  };
  const headers: [string, string][] = [];
  for (const [k, values] of Object.entries(job.headers)) {
    for (const v of values) headers.push([k, v]);
  }
  for (const [k, v] of Object.entries(job.extra ?? {})) headers.push([k, String(v)]);
  if (job.attempt !== undefined) headers.push([ATTEMPT_HEADER, String(job.attempt)]);
  if (job.traceparent !== undefined) headers.push([TRACEPARENT_HEADER, job.traceparent]);
  headers.push([CONTENT_TYPE_HEADER, job.contentType]);
  return { data: Buffer.from(JSON.stringify(envelope), 'utf8'), headers, msgId: msgIdOf(job) };
}

export function msgIdOf(job: OutgoingJob): string {
  if (job.extra !== undefined && Object.keys(job.extra).length > 0) return `${job.id}:dead:${job.attempt ?? 1}`;
  if (job.attempt !== undefined && job.attempt > 1) return `${job.id}:${job.attempt}`;
  return job.id;
}

export interface DecodeContext {
  pipeline: string;
  pipelineJob: string | undefined;
  queue: string;
  /** the stream sequence: the id of a message that carries none, stable across its redeliveries */
  streamSeq: number;
  stream: string;
  /** JetStream's count of deliveries of this message, 1 for the first */
  deliveryCount: number;
}

/** What a delivered message's reply subject says of it. */
export interface AckSubjectInfo {
  stream: string;
  /** JetStream's count of deliveries of this message, 1 for the first */
  deliveryCount: number;
  streamSeq: number;
}

const ACK_PREFIX = '$JS.ACK.';

/**
 * The stream, delivery count and stream sequence from a JetStream reply subject, read in place (this runs
 * once per message; the client's `JsMsg.info` splits the subject into a dozen strings):
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens) or, from servers with
 * domains, `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>...` (11 or more). The
 * same reading as the client's. Undefined for any other subject.
 */
export function parseAckSubject(reply: string): AckSubjectInfo | undefined {
  if (!reply.startsWith(ACK_PREFIX)) return undefined;
  let dots = 0;
  for (let i = reply.indexOf('.'); i !== -1; i = reply.indexOf('.', i + 1)) dots += 1;
  // the token the stream is: 2 of 9, or 4 of 11 and more
  const streamToken = dots === 8 ? 2 : dots >= 10 ? 4 : -1;
  if (streamToken === -1) return undefined;
  let streamStart = 0;
  for (let k = 0; k < streamToken; k++) streamStart = reply.indexOf('.', streamStart) + 1;
  const streamEnd = reply.indexOf('.', streamStart);
  const consumerEnd = reply.indexOf('.', streamEnd + 1);
  const deliveredEnd = reply.indexOf('.', consumerEnd + 1);
  const deliveryCount = digitsAt(reply, consumerEnd + 1, deliveredEnd);
  const streamSeq = digitsAt(reply, deliveredEnd + 1, reply.indexOf('.', deliveredEnd + 1));
  if (deliveryCount === undefined || streamSeq === undefined) return undefined;
  return { stream: reply.slice(streamStart, streamEnd), deliveryCount, streamSeq };
}

/** the decimal number s[from, to) (digits only, at least one), if it is a safe integer */
function digitsAt(s: string, from: number, to: number): number | undefined {
  if (to <= from) return undefined;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A delivered message's headers as name -> values (names as sent): a Map, or the client's MsgHdrs as they are. */
export type RawHeaders = Iterable<[string, string[]]>;

/** A consumed message as a Job (plus `invalid` when it cannot be one). */
export function decodeMessage(data: Uint8Array, raw: RawHeaders, ctx: DecodeContext): Job & { invalid?: string } {
  const plain: Headers = {};
  let msgId: string | undefined;
  let attemptHeader: string | undefined;
  let contentType: string | undefined;
  let traceparent: string | undefined;
  let rrId: string | undefined;
  let rrJob: string | undefined;
  let rrHeaders: string | undefined;
  for (const [name, values] of raw) {
    const lower = name.toLowerCase();
    const first = values[0];
    if (!INTERNAL.has(lower)) {
      const prev = plain[name];
      plain[name] = prev === undefined ? values.slice() : prev.concat(values);
      continue;
    }
    if (first === undefined) continue;
    if (lower === MSG_ID_HEADER.toLowerCase()) msgId = first;
    else if (lower === ATTEMPT_HEADER) attemptHeader = first;
    else if (lower === CONTENT_TYPE_HEADER) contentType = first;
    else if (lower === TRACEPARENT_HEADER) traceparent = first;
    else if (lower === RR_ID) rrId = first;
    else if (lower === RR_JOB) rrJob = first;
    else if (lower === RR_HEADERS) rrHeaders = first;
  }
  let invalid: string | undefined;
  let headers = plain;
  if (rrHeaders !== undefined) {
    const decoded = decodeRrHeaders(rrHeaders);
    if (decoded.ok) headers = { ...plain, ...decoded.headers };
    else invalid = decoded.error;
  }
  const envelope = parseEnvelope(data);
  const body = envelope ? envelope.body : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (envelope?.headers) headers = { ...envelope.headers, ...headers };
  const job: Job & { invalid?: string } = {
    id: envelope ? envelope.id : idOf({ rrId, messageId: msgId }, () => `${ctx.stream}-${ctx.streamSeq}`),
    job: envelope ? envelope.job : jobNameOf({ rrJob, pipelineJob: ctx.pipelineJob, pipeline: ctx.pipeline }),
    body,
    headers,
    attempt: attemptOf({ attemptHeader, priorDeliveries: ctx.deliveryCount - 1 }),
    redelivered: ctx.deliveryCount > 1,
    queue: ctx.queue,
  };
  if (contentType !== undefined && contentType !== '') job.contentType = contentType;
  if (envelope?.priority !== undefined) job.priority = envelope.priority;
  if (traceparent !== undefined && traceparent !== '') job.traceparent = traceparent;
  else if (headers[TRACEPARENT_HEADER]?.[0] !== undefined) job.traceparent = headers[TRACEPARENT_HEADER][0];
  if (msgId !== undefined && msgId !== '') job.messageId = msgId;
  if (invalid !== undefined) job.invalid = invalid;
  return job;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const JOB_KEY = Buffer.from('"job"');
const ID_KEY = Buffer.from('"id"');
const UNICODE_ESCAPE = Buffer.from('\\u');

interface ParsedEnvelope {
  job: string;
  id: string;
  body: Buffer;
  headers?: Headers;
  priority?: number;
}

/**
 * RoadRunner's envelope, or undefined when the body is anything else. It must be a JSON object with a
 * non-empty string `job` and `id` and a `payload` that is base64 (or null/absent for an empty body):
 * a third-party JSON object that merely parses is a raw job, never a job with an empty name.
 */
export function parseEnvelope(data: Uint8Array): ParsedEnvelope | undefined {
  // cheap pre-checks, so that the common raw body is not parsed here as well as where it becomes the
  // frame's payload: an envelope starts with '{' (after whitespace), and names its keys "job" and "id"
  // (unless a key is written with \u escapes, which then sends it through the full parse)
  let i = 0;
  while (i < data.length && (data[i] === 0x20 || data[i] === 0x0a || data[i] === 0x0d || data[i] === 0x09)) i++;
  if (data[i] !== 0x7b) return undefined;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if ((bytes.indexOf(JOB_KEY) === -1 || bytes.indexOf(ID_KEY) === -1) && bytes.indexOf(UNICODE_ESCAPE) === -1) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const e = parsed as Record<string, unknown>;
  if (typeof e['job'] !== 'string' || e['job'] === '' || typeof e['id'] !== 'string' || e['id'] === '') return undefined;
  const payload = e['payload'];
  let body: Buffer;
  if (payload === null || payload === undefined) body = Buffer.alloc(0);
  else if (typeof payload === 'string' && payload.length % 4 === 0 && BASE64.test(payload)) body = Buffer.from(payload, 'base64');
  else return undefined;
  const out: ParsedEnvelope = { job: e['job'], id: e['id'], body };
  const options = e['options'];
  if (options !== null && typeof options === 'object' && !Array.isArray(options)) {
    const p = (options as Record<string, unknown>)['priority'];
    if (typeof p === 'number' && Number.isFinite(p)) out.priority = p;
  }
  const h = e['headers'];
  if (h !== null && typeof h === 'object' && !Array.isArray(h)) {
    const headers: Headers = {};
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
      if (Array.isArray(v)) headers[k] = v.map(String);
      else if (v !== null && v !== undefined) headers[k] = [String(v)];
    }
    out.headers = headers;
  }
  return out;
}
