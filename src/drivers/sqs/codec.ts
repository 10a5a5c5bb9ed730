// SQS messages <-> jobs, in RoadRunner's sqs wire format: message attributes rr_id, rr_job, rr_delay,
// rr_auto_ack (String), rr_headers (Binary, JSON {k:[v]}) and rr_priority (Number), so RoadRunner and
// jobrunner share queues. SQS allows 10 message attributes: the six above, and at most four of
// jobrunner's own (attempt, content type, body encoding, due time); everything else travels inside
// rr_headers (the trace context too, as RoadRunner puts it there). Pure functions, no I/O.

import { createHash } from 'node:crypto';
import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { Headers, Job, OutgoingJob } from '../driver.js';
import {
  ATTEMPT_HEADER,
  RR_AUTO_ACK,
  RR_DELAY,
  RR_HEADER_NAMES,
  RR_HEADERS,
  RR_ID,
  RR_JOB,
  RR_PRIORITY,
  TRACEPARENT_HEADER,
  attemptOf,
  decodeRrHeaders,
  encodeRrHeaders,
  idOf,
  jobNameOf,
} from '../wire.js';

/** The content type of the body (absent: application/octet-stream for binary, none for text). */
export const CONTENT_TYPE_ATTR = 'content-type';
/** `base64` when the body is not text SQS can carry as it is; `empty` for an empty body (SQS needs 1 char). */
export const BODY_ATTR = 'x-jobrunner-body';
/** ms since the epoch when a job delayed past SQS's 900 s is due; the driver re-delays it on receipt until then. */
export const DUE_ATTR = 'x-jobrunner-due';
/** The message attribute a third-party producer may name the job with (as AMQP's `type` property). */
export const TYPE_ATTR = 'type';
/** The header that sets a FIFO job's MessageGroupId (SQS's own name: a consumed FIFO message carries it). */
export const GROUP_HEADER = 'MessageGroupId';

/** SQS's longest per-message delay. */
export const MAX_NATIVE_DELAY_S = 900;

const INTERNAL_ATTRS = new Set<string>([...RR_HEADER_NAMES, ATTEMPT_HEADER, CONTENT_TYPE_ATTR, BODY_ATTR, DUE_ATTR]);

export interface SendEntry {
  MessageBody: string;
  MessageAttributes: Record<string, MessageAttributeValue>;
  DelaySeconds?: number;
  MessageGroupId?: string;
  MessageDeduplicationId?: string;
}

export interface EncodeContext {
  fifo: boolean;
  /** default rr_priority */
  priority: number;
  /** the pipeline's message_group_id, '' for none */
  messageGroupId: string;
  pipeline: string;
  now: number;
  /** SQS's 900 s; tests shorten it to run the re-delay path in seconds */
  maxNativeDelayS?: number;
}

function s(value: string): MessageAttributeValue {
  return { DataType: 'String', StringValue: value };
}
function n(value: number): MessageAttributeValue {
  return { DataType: 'Number', StringValue: String(Math.trunc(value)) };
}

/**
 * Characters an SQS message body may hold (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF).
 * A lone surrogate shows up as U+FFFD after decoding, which round-trips only when the bytes said so.
 */
// eslint-disable-next-line no-control-regex
const NOT_ALLOWED = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

/** The body as SQS carries it: text as it is, anything else base64 (marked by BODY_ATTR). */
export function encodeBody(body: Buffer): { text: string; encoding?: 'base64' | 'empty' } {
  if (body.length === 0) return { text: '-', encoding: 'empty' };
  const text = body.toString('utf8');
  if (!NOT_ALLOWED.test(text) && Buffer.byteLength(text, 'utf8') === body.length && Buffer.from(text, 'utf8').equals(body)) return { text };
  return { text: body.toString('base64'), encoding: 'base64' };
}

/** The dedup id of a FIFO message: the job id (a double push is one job); a retry or requeue differs per attempt. */
export function dedupId(job: OutgoingJob): string {
  const base = job.attempt === undefined ? job.id : `${job.id}:${job.attempt}`;
  const id = job.extra?.['x-jobrunner-dead-reason'] !== undefined ? `${base}:dead` : base;
  // SQS: up to 128 characters of [A-Za-z0-9] and punctuation
  return id.length <= 128 && /^[\x21-\x7e]+$/.test(id) ? id : createHash('sha256').update(id).digest('hex');
}

/** The delay SQS applies natively (0..900 s, rounded up) and, past 900 s, when the job is due. */
export function delayOf(delayMs: number, now: number, maxNativeS = MAX_NATIVE_DELAY_S): { seconds: number; dueAt?: number } {
  if (delayMs <= 0) return { seconds: 0 };
  const seconds = Math.ceil(delayMs / 1000);
  if (seconds <= maxNativeS) return { seconds };
  return { seconds: maxNativeS, dueAt: now + delayMs };
}

/** An OutgoingJob as a SendMessage(Batch) entry. A FIFO queue takes no per-message delay (checked by the caller). */
export function encodeJob(job: OutgoingJob, ctx: EncodeContext): SendEntry {
  const headers: Headers = { ...job.headers };
  for (const [k, v] of Object.entries(job.extra ?? {})) headers[k] = [String(v)];
  if (job.traceparent !== undefined) headers[TRACEPARENT_HEADER] = [job.traceparent];
  const body = encodeBody(job.body);
  const delay = ctx.fifo ? { seconds: 0 } : delayOf(job.delayMs, ctx.now, ctx.maxNativeDelayS);
  const attrs: Record<string, MessageAttributeValue> = {
    [RR_ID]: s(job.id),
    [RR_JOB]: s(job.job),
    [RR_DELAY]: s(String(Math.max(0, Math.round(job.delayMs / 1000)))),
    [RR_HEADERS]: { DataType: 'Binary', BinaryValue: encodeRrHeaders(headers) },
    [RR_PRIORITY]: n(job.priority ?? ctx.priority),
    [RR_AUTO_ACK]: s('false'),
  };
  if (job.attempt !== undefined) attrs[ATTEMPT_HEADER] = n(job.attempt);
  if (job.contentType !== '') attrs[CONTENT_TYPE_ATTR] = s(job.contentType);
  if (body.encoding !== undefined) attrs[BODY_ATTR] = s(body.encoding);
  if (delay.dueAt !== undefined) attrs[DUE_ATTR] = n(delay.dueAt);
  const entry: SendEntry = { MessageBody: body.text, MessageAttributes: attrs };
  if (delay.seconds > 0) entry.DelaySeconds = delay.seconds;
  if (ctx.fifo) {
    entry.MessageGroupId = job.headers[GROUP_HEADER]?.[0] || ctx.messageGroupId || ctx.pipeline;
    entry.MessageDeduplicationId = dedupId(job);
  }
  return entry;
}

/** An attribute's value as a string (Binary as UTF-8), undefined when it has none. */
function attrString(v: MessageAttributeValue | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v.StringValue !== undefined) return v.StringValue;
  if (v.BinaryValue !== undefined) return Buffer.from(v.BinaryValue).toString('utf8');
  return undefined;
}

export interface DecodeContext {
  pipeline: string;
  pipelineJob: string | undefined;
  queue: string;
}

export type DecodedJob = Job & { invalid?: string };

/** The ApproximateReceiveCount of a received message (1 for a first delivery). */
export function receiveCountOf(msg: Message): number {
  const c = Number(msg.Attributes?.ApproximateReceiveCount ?? '1');
  return Number.isFinite(c) && c >= 1 ? Math.floor(c) : 1;
}

/** When a job delayed past 900 s is due (ms epoch), or undefined. */
export function dueOf(msg: Message): number | undefined {
  const v = Number(attrString(msg.MessageAttributes?.[DUE_ATTR]));
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * A received message as a job. A message without rr_* attributes (any other producer) is a job all the
 * same: id from the MessageId, name from the `type` attribute or the pipeline's `job`, every message
 * attribute a header. SQS's system attributes (ApproximateReceiveCount, SentTimestamp, MessageGroupId...)
 * are headers too, as RoadRunner passes them.
 */
export function decodeMessage(msg: Message, ctx: DecodeContext): DecodedJob {
  const attrs = msg.MessageAttributes ?? {};
  let invalid: string | undefined;
  const plain: Headers = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (INTERNAL_ATTRS.has(k)) continue;
    const value = attrString(v);
    if (value !== undefined) plain[k] = [value];
  }
  let rrHeaders: Headers = {};
  const rawRr = attrs[RR_HEADERS];
  if (rawRr !== undefined) {
    const decoded = decodeRrHeaders(rawRr.BinaryValue !== undefined ? Buffer.from(rawRr.BinaryValue) : (rawRr.StringValue ?? ''));
    if (decoded.ok) rrHeaders = decoded.headers;
    else invalid = decoded.error;
  }
  const system: Headers = {};
  for (const [k, v] of Object.entries(msg.Attributes ?? {})) if (v !== undefined) system[k] = [v];
  const headers: Headers = { ...plain, ...rrHeaders, ...system };

  let body: Buffer;
  const encoding = attrString(attrs[BODY_ATTR]);
  if (encoding === 'base64') body = Buffer.from(msg.Body ?? '', 'base64');
  else if (encoding === 'empty') body = Buffer.alloc(0);
  else body = Buffer.from(msg.Body ?? '', 'utf8');

  const receives = receiveCountOf(msg);
  const job: DecodedJob = {
    id: idOf({ rrId: attrString(attrs[RR_ID]), messageId: msg.MessageId }),
    job: jobNameOf({ rrJob: attrString(attrs[RR_JOB]), type: attrString(attrs[TYPE_ATTR]), pipelineJob: ctx.pipelineJob, pipeline: ctx.pipeline }),
    body,
    headers,
    // the attempt header says which attempt this message's first delivery is; each receive since is one more
    attempt: attemptOf({ attemptHeader: attrString(attrs[ATTEMPT_HEADER]) }) + receives - 1,
    redelivered: receives > 1,
    queue: ctx.queue,
  };
  const contentType = attrString(attrs[CONTENT_TYPE_ATTR]);
  if (contentType !== undefined && contentType !== '') job.contentType = contentType;
  const priority = Number(attrString(attrs[RR_PRIORITY]));
  if (attrs[RR_PRIORITY] !== undefined && Number.isFinite(priority)) job.priority = priority;
  const tp = rrHeaders[TRACEPARENT_HEADER]?.[0] ?? plain[TRACEPARENT_HEADER]?.[0];
  if (tp !== undefined && tp !== '') job.traceparent = tp;
  if (msg.MessageId !== undefined && msg.MessageId !== '') job.messageId = msg.MessageId;
  if (invalid !== undefined) job.invalid = invalid;
  return job;
}
