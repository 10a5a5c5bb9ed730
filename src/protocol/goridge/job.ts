// The job frame a RoadRunner PHP worker reads (docs/protocol-goridge.md): flags CODEC_RAW, one option =
// the context's length, payload = context JSON followed by the body as the producer sent it. Pure, no I/O.

import { CODEC_RAW, encodeParts } from './frame.js';

type Headers = Record<string, string[]>;

/** What the context is made from: the job as every protocol sees it. */
export interface GoridgeJob {
  id: string;
  job: string;
  pipeline: string;
  /** jobrunner's driver name (amqp091, amqp1, nats, sqs, memory) */
  driver: string;
  queue: string;
  headers: Headers;
  /** the message's priority when the driver knows it (rr_priority) */
  priority?: number;
}

/** jobrunner's driver names as RoadRunner's drivers name themselves (the PHP Driver enum's values). */
const RR_DRIVER: Readonly<Record<string, string>> = {
  amqp091: 'amqp',
  amqp: 'amqp',
  amqp1: 'amqp',
  nats: 'nats',
  sqs: 'sqs',
  memory: 'memory',
};

export function roadrunnerDriverName(driver: string): string {
  return RR_DRIVER[driver] ?? driver;
}

/**
 * The headers a RoadRunner worker sees. RoadRunner's amqp driver hands the worker every AMQP header,
 * its own rr_* ones included (stringified), with rr_headers' entries merged in; jobrunner's drivers
 * decode the rr_* headers and pass only the others, so for amqp they are put back here as RoadRunner
 * would have them. Its memory, nats and sqs drivers pass the job's headers alone, and so does this.
 */
export function roadrunnerHeaders(job: GoridgeJob): Headers {
  if (roadrunnerDriverName(job.driver) !== 'amqp') return job.headers;
  const out: Headers = { ...job.headers };
  out['rr_id'] = [job.id];
  out['rr_job'] = [job.job];
  out['rr_pipeline'] = [job.pipeline];
  out['rr_headers'] = [JSON.stringify(job.headers)];
  if (job.priority !== undefined) out['rr_priority'] = [String(job.priority)];
  out['rr_auto_ack'] = ['false'];
  return out;
}

/** The context JSON, keys in the order RoadRunner's amqp driver writes them. */
export function jobContext(job: GoridgeJob): string {
  return (
    '{"id":' +
    JSON.stringify(job.id) +
    ',"job":' +
    JSON.stringify(job.job) +
    ',"driver":' +
    JSON.stringify(roadrunnerDriverName(job.driver)) +
    ',"queue":' +
    JSON.stringify(job.queue) +
    ',"headers":' +
    JSON.stringify(roadrunnerHeaders(job)) +
    ',"pipeline":' +
    JSON.stringify(job.pipeline) +
    '}'
  );
}

/** The whole job frame, ready for the worker's stdin. */
export function encodeJob(job: GoridgeJob, body: Buffer): Buffer {
  const context = Buffer.from(jobContext(job), 'utf8');
  return encodeParts(CODEC_RAW, [context.length], [context, body], context.length + body.length);
}
