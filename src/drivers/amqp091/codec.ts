// AMQP 0-9-1 messages <-> jobs, in RoadRunner's wire format (SPEC §6). amqplib infers header field types
// from JS values (a small integer becomes a signed byte 'b', a string 'S', a Buffer a byte array 'x'), so
// the headers RoadRunner type-asserts in Go are forced with amqplib's {'!': type, value} notation:
// rr_delay int32 ('I'), rr_priority int64 ('l'), rr_auto_ack bool ('t'), rr_headers bytes ('x').

import type { ConsumeMessage, Options } from 'amqplib';
import type { Amqp091PipelineOptions } from './options.js';
import type { Headers, Job, OutgoingJob } from '../driver.js';
import {
  ATTEMPT_HEADER,
  DELIVERY_COUNT_HEADER,
  RR_AUTO_ACK,
  RR_DELAY,
  RR_HEADER_NAMES,
  RR_HEADERS,
  RR_ID,
  RR_JOB,
  RR_PIPELINE,
  RR_PRIORITY,
  TRACEPARENT_HEADER,
  attemptOf,
  decodeRrHeaders,
  encodeRrHeaders,
  headersToStrings,
  undecodable,
  idOf,
  jobNameOf,
  publishable,
} from '../wire.js';

/** A header value for amqplib: inferred from the JS value, or forced with {'!': type, value}. */
type TypedValue = { '!': 'int32' | 'int64' | 'timestamp'; value: number };
export type AmqpHeaderValue = string | number | boolean | Buffer | TypedValue;

/** The AMQP headers and properties of a job published by jobrunner. */
export function encodeJob(outgoing: OutgoingJob, opts: Amqp091PipelineOptions, matchHeaders: Record<string, unknown>): { content: Buffer; options: Options.Publish } {
  // never a copy the broker cannot carry (SPEC §5): out-of-range numbers and oversized headers normalised
  const job = publishable(outgoing);
  const priority = clampPriority(job.priority ?? opts.priority);
  const headers: Record<string, unknown> = {};
  // routing headers first so the job's own headers never override them silently (headers exchanges)
  for (const [k, v] of Object.entries(matchHeaders)) headers[k] = v;
  for (const [k, v] of Object.entries(job.extra ?? {})) headers[k] = v;
  headers[RR_ID] = job.id;
  headers[RR_JOB] = job.job;
  headers[RR_PIPELINE] = job.pipeline;
  headers[RR_HEADERS] = encodeRrHeaders(job.headers);
  headers[RR_DELAY] = { '!': 'int32', value: Math.max(0, Math.round(job.delayMs / 1000)) } satisfies TypedValue;
  headers[RR_PRIORITY] = { '!': 'int64', value: job.priority ?? opts.priority } satisfies TypedValue;
  headers[RR_AUTO_ACK] = false;
  if (job.attempt !== undefined) headers[ATTEMPT_HEADER] = { '!': 'int32', value: job.attempt } satisfies TypedValue;
  if (job.traceparent !== undefined) headers[TRACEPARENT_HEADER] = job.traceparent;
  const options: Options.Publish = {
    // message_id is a short string (255 bytes at most); a longer id travels in rr_id alone
    ...(Buffer.byteLength(job.id) <= 255 ? { messageId: job.id } : {}),
    contentType: job.contentType,
    deliveryMode: 2,
    timestamp: Math.floor(Date.now() / 1000),
    headers,
  };
  if (priority !== undefined) options.priority = priority;
  return { content: job.body, options };
}

/** AMQP 0-9-1 priorities are an octet; RabbitMQ caps at the queue's x-max-priority (255 at most). */
function clampPriority(p: number | undefined): number | undefined {
  if (p === undefined || !Number.isFinite(p)) return undefined;
  return Math.max(0, Math.min(255, Math.round(p)));
}

export interface DecodeContext {
  pipeline: string;
  /** the pipeline's `job` setting */
  pipelineJob: string | undefined;
  queue: string;
}

/** A consumed message as a Job (plus `invalid` when it cannot be one). */
export function decodeMessage(msg: ConsumeMessage, ctx: DecodeContext): Job & { invalid?: string } {
  const amqpHeaders = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const props = msg.properties;
  // every non-rr header as strings; rr_headers then override per key, as RoadRunner's unpack does
  const { headers: plain, bad } = headersToStrings(amqpHeaders, RR_HEADER_NAMES);
  if (typeof props.type === 'string' && props.type !== '' && plain['type'] === undefined) plain['type'] = [props.type];
  let invalid: string | undefined = bad;
  let rrHeaders: Headers = {};
  if (amqpHeaders[RR_HEADERS] !== undefined) {
    const decoded = decodeRrHeaders(amqpHeaders[RR_HEADERS]);
    if (decoded.ok) rrHeaders = decoded.headers;
    else invalid ??= decoded.error;
  }
  const headers: Headers = { ...plain, ...rrHeaders };
  const messageId = typeof props.messageId === 'string' && props.messageId !== '' ? props.messageId : undefined;
  const job: Job & { invalid?: string } = {
    id: idOf({ rrId: amqpHeaders[RR_ID], messageId: props.messageId }),
    job: jobNameOf({ rrJob: amqpHeaders[RR_JOB], type: props.type, pipelineJob: ctx.pipelineJob, pipeline: ctx.pipeline }),
    body: msg.content,
    headers,
    attempt: attemptOf({ attemptHeader: amqpHeaders[ATTEMPT_HEADER], priorDeliveries: amqpHeaders[DELIVERY_COUNT_HEADER] }),
    redelivered: msg.fields.redelivered,
    queue: ctx.queue,
  };
  if (typeof props.contentType === 'string' && props.contentType !== '') job.contentType = props.contentType;
  const priority = typeof props.priority === 'number' ? props.priority : numberOf(amqpHeaders[RR_PRIORITY]);
  if (priority !== undefined) job.priority = priority;
  const tp = amqpHeaders[TRACEPARENT_HEADER];
  const traceparent = typeof tp === 'string' ? tp : Buffer.isBuffer(tp) ? tp.toString('utf8') : rrHeaders[TRACEPARENT_HEADER]?.[0];
  if (traceparent !== undefined && traceparent !== '') job.traceparent = traceparent;
  if (messageId !== undefined) job.messageId = messageId;
  if (invalid !== undefined) job.invalid = invalid;
  return job;
}

/** decodeMessage that never throws: a message it cannot read is an invalid job (dead-lettered with the reason). */
export function decodeMessageSafely(msg: ConsumeMessage, ctx: DecodeContext): Job & { invalid?: string } {
  try {
    return decodeMessage(msg, ctx);
  } catch (err) {
    const h = (msg.properties.headers ?? {}) as Record<string, unknown>;
    return undecodable({ rrId: h[RR_ID], messageId: msg.properties.messageId, body: msg.content, queue: ctx.queue, pipeline: ctx.pipeline, redelivered: msg.fields.redelivered }, err);
  }
}

function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}
