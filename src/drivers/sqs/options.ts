// The sqs driver's settings and pipeline options: RoadRunner's sqs keys with RoadRunner's meaning, read
// from a schema-valid mapping (defaults filled in by ajv from ./schema.json). Pure: no AWS SDK import here, so the
// config layer can normalise an sqs pipeline without loading the client.

import type { PipelineOptionsBase } from '../../config/types.js';
import { boolOf, ms, msOf, numOf, obj, strOf, type Obj } from '../../config/values.js';

/** strings as they are, numbers and booleans as their text (tags, section values) */
function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

/** The global `sqs` section: where and as whom to connect. `secret` and `sessionToken` are never logged. */
export interface SqsSettings {
  key?: string;
  secret?: string;
  sessionToken?: string;
  region?: string;
  /** an SQS-compatible server (LocalStack, ElasticMQ, an emulator) instead of AWS's own endpoint */
  endpoint?: string;
}

export interface SqsPipelineOptions extends PipelineOptionsBase {
  /** the queue's name (a FIFO queue's ends in .fifo) */
  queue: string;
  /** the most messages this pipeline holds at once (received and not yet settled) */
  prefetch: number;
  /** rr_priority of pushed jobs that set none */
  priority: number;
  /** seconds a received message stays invisible; 0: the queue's own VisibilityTimeout */
  visibilityTimeoutS: number;
  /** seconds a failed job stays invisible when retain_failed_jobs keeps it; 0: the visibility timeout */
  errorVisibilityTimeoutS: number;
  /** RoadRunner's retain_failed_jobs: a given-up job stays in the queue instead of being deleted */
  retainFailedJobs: boolean;
  /** long polling: seconds one ReceiveMessage waits for messages (0..20) */
  waitTimeSeconds: number;
  /** false: use the queue as it exists (skip_queue_declaration / declare: false) */
  declare: boolean;
  /** FIFO queues: the MessageGroupId of pushed jobs that carry none; '' uses the pipeline name */
  messageGroupId: string;
  /** CreateQueue attributes, under their AWS names, values as strings */
  attributes: Record<string, string>;
  tags: Record<string, string>;
  /** keep a held message invisible while its job runs (ChangeMessageVisibility before it runs out) */
  extendVisibility: boolean;
}


/** AWS's queue attribute names; RoadRunner's configs may write them in lower case (viper lowercases keys). */
const ATTRIBUTE_NAMES = [
  'DelaySeconds',
  'MaximumMessageSize',
  'MessageRetentionPeriod',
  'Policy',
  'ReceiveMessageWaitTimeSeconds',
  'VisibilityTimeout',
  'RedrivePolicy',
  'RedriveAllowPolicy',
  'FifoQueue',
  'ContentBasedDeduplication',
  'DeduplicationScope',
  'FifoThroughputLimit',
  'KmsMasterKeyId',
  'KmsDataKeyReusePeriodSeconds',
  'SqsManagedSseEnabled',
] as const;
const BY_LOWER = new Map<string, string>(ATTRIBUTE_NAMES.map((n) => [n.toLowerCase(), n]));
/** RoadRunner maps these lower-case values to AWS's spelling */
const VALUE_SPELLING = new Map<string, string>([
  ['messagegroup', 'messageGroup'],
  ['perqueue', 'perQueue'],
  ['permessagegroupid', 'perMessageGroupId'],
]);

/** The most SQS lets a message stay invisible, and the longest long poll. */
export const MAX_VISIBILITY_S = 43_200;
export const MAX_WAIT_S = 20;

/** ms as whole seconds, rounded up */
function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}
function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}

/** A queue attribute value as SQS takes it: strings as they are, objects (RedrivePolicy) as JSON. */
function attributeValue(v: unknown): string {
  if (typeof v === 'string') return VALUE_SPELLING.get(v.toLowerCase()) ?? v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

export function normalizeAttributes(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(raw))) {
    if (v === null || v === undefined) continue;
    out[BY_LOWER.get(k.toLowerCase()) ?? k] = attributeValue(v);
  }
  return out;
}

/** The global `sqs` section (empty strings, as RoadRunner's samples carry them, mean unset). */
export function normalizeSqsSection(section: unknown): SqsSettings {
  const s = obj(section);
  const out: SqsSettings = {};
  const set = (k: keyof SqsSettings, v: unknown): void => {
    const value = str(v).trim();
    if (value !== '') out[k] = value;
  };
  set('key', s['key']);
  set('secret', s['secret']);
  set('sessionToken', s['session_token']);
  set('region', s['region']);
  set('endpoint', s['endpoint']);
  return out;
}

/**
 * A pipeline's `config:` mapping. `raw` is what the user wrote (to tell aliases apart), `full` the same
 * with the schema's defaults (./schema.json, read here without a second copy). `max_messages_in_flight`
 * (RoadRunner's bound on held messages) wins over `prefetch` when above 0; `wait_time` is RoadRunner's
 * other name for `wait_time_seconds`. Out-of-range seconds are clamped, as RoadRunner does.
 */
export function normalizeSqsOptions(pipeline: string, raw: Obj, full: Obj): SqsPipelineOptions {
  const inFlight = numOf(full, 'max_messages_in_flight');
  const waitMs = raw['wait_time_seconds'] === undefined && raw['wait_time'] !== undefined ? ms(full['wait_time'], 0) : msOf(full, 'wait_time_seconds');
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(full['tags']))) tags[k] = str(v);
  return {
    queue: str(full['queue']) || pipeline,
    prefetch: inFlight > 0 ? inFlight : numOf(full, 'prefetch'),
    priority: numOf(full, 'priority'),
    visibilityTimeoutS: clamp(seconds(msOf(full, 'visibility_timeout')), 0, MAX_VISIBILITY_S),
    errorVisibilityTimeoutS: clamp(seconds(msOf(full, 'error_visibility_timeout')), 0, MAX_VISIBILITY_S),
    retainFailedJobs: boolOf(full, 'retain_failed_jobs'),
    waitTimeSeconds: clamp(seconds(waitMs), 0, MAX_WAIT_S),
    declare: boolOf(full, 'declare') && !boolOf(full, 'skip_queue_declaration'),
    messageGroupId: strOf(full, 'message_group_id'),
    attributes: normalizeAttributes(full['attributes']),
    tags,
    extendVisibility: boolOf(full, 'extend_visibility'),
  };
}

/** A FIFO queue: its name ends in .fifo (SQS requires it of FIFO queues and refuses it to others). */
export function isFifo(queue: string): boolean {
  return queue.endsWith('.fifo');
}
