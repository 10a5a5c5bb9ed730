// nats's option and connection types and their normalisers: RoadRunner's nats driver keys (subject,
// stream, prefetch, ack_wait, delete_after_ack, delete_stream_on_stop, deliver_new, rate_limit, priority)
// plus consumer, declare and redial_timeout. Defaults come from the schema fragment (./schema.json, filled
// in by ajv): read here without a second copy.

import type { PipelineOptionsBase, TlsConfig } from '../../config/types.js';
import { boolOf, msOf, numOf, obj, str, strOf, tls, urls, type Obj } from '../../config/values.js';
import type { NormalizedOptions } from '../driver.js';

export interface NatsConnectionConfig {
  /** one or more nats:// URLs (one cluster); may carry user:password: never log them unredacted */
  urls: string[];
  tls?: TlsConfig;
}

/** nats pipeline options: RoadRunner's nats driver keys with its defaults, plus consumer and declare. */
export interface NatsPipelineOptions extends PipelineOptionsBase {
  /** the subject jobs are published to and the consumer filters on */
  subject: string;
  stream: string;
  /** the durable consumer's name (default jobrunner-<pipeline>) */
  consumer: string;
  /** the most unsettled messages this daemon holds at once */
  prefetch: number;
  /** default priority of pushed jobs (carried in the envelope; JetStream has no priorities) */
  priority: number;
  ackWaitMs: number;
  deleteAfterAck: boolean;
  deleteStreamOnStop: boolean;
  deliverNew: boolean;
  /** RoadRunner's rate_limit: accepted, informational (pull consumers have no rate limit) */
  rateLimit: number;
  /** false: use the stream and consumer as they exist, create nothing */
  declare: boolean;
}

export function natsSection(full: Obj): NatsConnectionConfig {
  const t = tls(full.tls);
  return { urls: urls(full.addr), ...(t ? { tls: t } : {}) };
}

/** a consumer name may not hold `.`, `*`, `>`, whitespace or path separators */
export function defaultConsumer(pipeline: string): string {
  return `jobrunner-${pipeline}`.replace(/[.*>\s/\\]/g, '_');
}

export function natsOptions(pipeline: string, full: Obj): NormalizedOptions<NatsPipelineOptions> {
  const consumer = str(full.consumer);
  const options: NatsPipelineOptions = {
    subject: strOf(full, 'subject'),
    stream: strOf(full, 'stream'),
    consumer: consumer !== '' ? consumer : defaultConsumer(pipeline),
    prefetch: numOf(full, 'prefetch'),
    priority: numOf(full, 'priority'),
    ackWaitMs: msOf(full, 'ack_wait'),
    deleteAfterAck: boolOf(full, 'delete_after_ack'),
    deleteStreamOnStop: boolOf(full, 'delete_stream_on_stop'),
    deliverNew: boolOf(full, 'deliver_new'),
    rateLimit: numOf(full, 'rate_limit'),
    declare: boolOf(full, 'declare'),
  };
  // no requeue_on_fail in RoadRunner's nats driver: without a retry block a failed job is terminated
  return { options, requeueOnFail: false, redialTimeoutMs: msOf(full, 'redial_timeout') };
}

const BAD_NAME = /[.*>\s/\\]/;

/** what crossref cannot leave to the schema: JetStream's rules for stream and consumer names */
export function natsCrossCheck(raw: Obj): { at: 'config'; message: string }[] {
  const c = obj(raw);
  const out: { at: 'config'; message: string }[] = [];
  for (const key of ['stream', 'consumer'] as const) {
    const v = c[key];
    if (typeof v === 'string' && BAD_NAME.test(v)) out.push({ at: 'config', message: `${key} \`${v}\`: a JetStream ${key} name may not contain \`.\`, \`*\`, \`>\`, whitespace or slashes` });
  }
  return out;
}
