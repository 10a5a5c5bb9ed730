// AMQP 1.0 messages <-> jobs (SPEC §6): how a rhea Message becomes the driver-neutral Job fields, and
// how an OutgoingJob becomes a rhea Message. Pure functions, no I/O; the wire details (header names,
// rr_headers, id / job name / attempt) come from ../wire.ts so both AMQP drivers agree.

import rhea from 'rhea';
import type { Message } from 'rhea';
import type { Headers, Job, OutgoingJob } from '../driver.js';
import {
  ATTEMPT_HEADER,
  RR_DELAY,
  RR_HEADERS,
  RR_HEADER_NAMES,
  RR_ID,
  RR_JOB,
  RR_PIPELINE,
  RR_PRIORITY,
  TRACEPARENT_HEADER,
  attemptOf,
  decodeRrHeaders,
  encodeRrHeaders,
  headerValueToStrings,
  headersToStrings,
  undecodable,
  idOf,
  jobNameOf,
  mergeHeaders,
  publishable,
} from '../wire.js';

const DATA = 0x75;
const SEQUENCE = 0x76;

/** Service Bus and RabbitMQ scheduled-delivery annotations. */
export const SCHEDULED_ENQUEUE_TIME = 'x-opt-scheduled-enqueue-time';

export interface DecodeContext {
  pipeline: string;
  pipelineJob?: string | undefined;
  queue: string;
}

export type DecodedJob = Omit<Job, never> & { invalid?: string };

/** The body as bytes: data sections concatenated; amqp-value strings as UTF-8, bytes as they are, others as JSON; sequences as JSON. */
export function bodyOf(message: Message): { body: Buffer; contentType?: string } {
  const b: unknown = message.body;
  if (isSection(b)) {
    if (b.typecode === DATA) {
      // one data section (nearly every message): its bytes as they are, no copy
      if (!b.multiple && Buffer.isBuffer(b.content)) return { body: b.content };
      const parts = b.multiple ? (b.content as unknown[]) : [b.content];
      return { body: Buffer.concat(parts.map(toBuffer)) };
    }
    if (b.typecode === SEQUENCE) {
      // one sequence section is a list; several are a list of lists
      return { body: Buffer.from(toJson(b.content), 'utf8'), contentType: 'application/json' };
    }
  }
  if (b === undefined || b === null) return { body: Buffer.alloc(0) };
  if (typeof b === 'string') return { body: Buffer.from(b, 'utf8') };
  if (Buffer.isBuffer(b) || b instanceof Uint8Array) return { body: Buffer.from(b) };
  return { body: Buffer.from(toJson(b), 'utf8'), contentType: 'application/json' };
}

/** Set on a message rhea could not decode (rhea-patches.ts): its value is the reason, its body the raw bytes. */
export const UNDECODABLE = 'jobrunner_undecodable';

/** A received message as the Job fields the pipeline sees (without settlement). */
export function decodeMessage(message: Message, ctx: DecodeContext): DecodedJob {
  const undecodable = (message as unknown as Record<string, unknown>)[UNDECODABLE];
  if (undecodable !== undefined) throw new Error(String(undecodable));
  const props: Record<string, unknown> = message.application_properties ?? {};
  const annotations: Record<string, unknown> = message.message_annotations ?? {};
  const { body, contentType: bodyType } = bodyOf(message);

  let invalid: string | undefined;
  let rrHeaders: Headers | undefined;
  const plain: Headers = {};
  let bad = headersToStrings(annotations, [], plain).bad;
  bad ??= headersToStrings(props, RR_HEADER_NAMES, plain).bad;
  if (props[RR_HEADERS] !== undefined && props[RR_HEADERS] !== null) {
    const decoded = decodeRrHeaders(props[RR_HEADERS]);
    if (decoded.ok) rrHeaders = decoded.headers;
    else invalid = decoded.error;
  }
  invalid ??= bad;
  // without rr_headers (most messages) there is nothing to merge: plain is this message's own object
  const headers = rrHeaders === undefined ? plain : mergeHeaders(rrHeaders, plain);

  const messageId = message.message_id === undefined ? undefined : firstString(message.message_id);
  const priorDeliveries = typeof message.delivery_count === 'number' ? message.delivery_count : undefined;
  const attempt = attemptOf({ attemptHeader: props[ATTEMPT_HEADER], priorDeliveries });
  const traceparent = firstString(props[TRACEPARENT_HEADER]);
  const priority = priorityOf(props[RR_PRIORITY], message.priority);
  const contentType = message.content_type !== undefined && message.content_type !== '' ? String(message.content_type) : bodyType;

  const job: DecodedJob = {
    id: idOf({ rrId: stringOf(props[RR_ID]), messageId: message.message_id }),
    job: jobNameOf({ rrJob: stringOf(props[RR_JOB]), type: message.subject, pipelineJob: ctx.pipelineJob, pipeline: ctx.pipeline }),
    body,
    headers,
    attempt,
    // RabbitMQ (3.x and 4.x classic queues) keeps delivery-count at 0 and sets first_acquirer=false on a
    // redelivery; Service Bus and quorum queues count
    redelivered: (priorDeliveries ?? 0) > 0 || message.first_acquirer === false,
    queue: ctx.queue,
  };
  if (contentType !== undefined) job.contentType = contentType;
  if (priority !== undefined) job.priority = priority;
  if (traceparent !== undefined) job.traceparent = traceparent;
  if (messageId !== undefined) job.messageId = messageId;
  if (invalid !== undefined) job.invalid = invalid;
  return job;
}

/** decodeMessage that never throws: a message it cannot read is an invalid job (dead-lettered with the reason). */
export function decodeMessageSafely(message: Message, ctx: DecodeContext): DecodedJob {
  try {
    return decodeMessage(message, ctx);
  } catch (err) {
    let body: Buffer = Buffer.alloc(0);
    try {
      body = bodyOf(message).body;
    } catch {
      // the body cannot be read either: the dead letter carries an empty one and the reason
    }
    const props: Record<string, unknown> = message.application_properties ?? {};
    return undecodable({ rrId: stringOf(props[RR_ID]), messageId: typeof message.message_id === 'string' ? message.message_id : undefined, body, queue: ctx.queue, pipeline: ctx.pipeline, redelivered: message.first_acquirer === false }, err);
  }
}

/** the first string of a header value, or undefined (a value too deep to read has none) */
function firstString(value: unknown): string | undefined {
  try {
    return headerValueToStrings(value)[0];
  } catch {
    return undefined;
  }
}

export interface EncodeOptions {
  durable: boolean;
  /** the pipeline's default priority (used when the job has none) */
  defaultPriority: number;
  /** message annotations to add (scheduled enqueue time) */
  annotations?: Record<string, unknown>;
  /** header ttl in ms (RabbitMQ per-message TTL) */
  ttlMs?: number;
}

/** An OutgoingJob as a rhea Message: one data section, RoadRunner's rr_* as application properties. */
export function encodeJob(outgoing: OutgoingJob, options: EncodeOptions): Message {
  // never a copy the broker cannot carry (SPEC §5): out-of-range numbers and oversized headers normalised
  const job = publishable(outgoing);
  const priority = job.priority ?? options.defaultPriority;
  const props: Record<string, unknown> = {
    [RR_ID]: job.id,
    [RR_JOB]: job.job,
    [RR_PIPELINE]: job.pipeline,
    // RoadRunner's amqp1 consumers read rr_headers as a JSON string
    [RR_HEADERS]: encodeRrHeaders(job.headers).toString('utf8'),
    [RR_DELAY]: rhea.types.wrap_int(Math.round(job.delayMs / 1000)),
    [RR_PRIORITY]: rhea.types.wrap_long(priority),
  };
  if (job.attempt !== undefined) props[ATTEMPT_HEADER] = rhea.types.wrap_int(job.attempt);
  if (job.traceparent !== undefined) props[TRACEPARENT_HEADER] = job.traceparent;
  for (const [k, v] of Object.entries(job.extra ?? {})) props[k] = v;
  const message: Message = {
    body: rhea.message.data_section(job.body),
    message_id: job.id,
    subject: job.job,
    content_type: job.contentType,
    creation_time: new Date(),
    durable: options.durable,
    application_properties: props,
  };
  if (priority > 0) message.priority = Math.min(255, Math.max(0, Math.round(priority)));
  if (options.annotations !== undefined) message.message_annotations = options.annotations;
  if (options.ttlMs !== undefined) message.ttl = options.ttlMs;
  return message;
}

interface SectionLike {
  typecode: number;
  content: unknown;
  multiple?: boolean;
}

function isSection(value: unknown): value is SectionLike {
  return typeof value === 'object' && value !== null && typeof (value as SectionLike).typecode === 'number' && 'content' in value;
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.alloc(0);
}

function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    // JSON.stringify turns a Buffer into {type:'Buffer',data:[...]} before calling us: undo it
    if (typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return Buffer.from((v as { data: number[] }).data).toString('utf8');
    }
    return v;
  });
}

function stringOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

function priorityOf(rrPriority: unknown, headerPriority: unknown): number | undefined {
  const n = Number(typeof rrPriority === 'bigint' ? rrPriority.toString() : rrPriority);
  if (rrPriority !== undefined && rrPriority !== null && Number.isFinite(n)) return n;
  return typeof headerPriority === 'number' ? headerPriority : undefined;
}
