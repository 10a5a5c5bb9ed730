// Builds the OutgoingJobs a pipeline publishes: follow-ups a worker asked for, retries and requeues of
// a delivery, and dead letters to a dead-letter pipeline.

import { randomUUID } from 'node:crypto';
import type { Delivery, Headers, OutgoingJob } from '../drivers/driver.js';
import type { FollowUp } from '../pool/types.js';

export function followUpJob(f: FollowUp, traceparent: string | undefined): OutgoingJob {
  return {
    id: randomUUID(),
    job: f.job,
    pipeline: f.pipeline,
    body: f.body,
    contentType: f.contentType,
    headers: f.headers,
    delayMs: f.delayMs,
    ...(f.priority === undefined ? {} : { priority: f.priority }),
    ...(traceparent === undefined ? {} : { traceparent }),
  };
}

/** The same job again, for a retry or a requeue: same id, body and headers (plus `headers`), next attempt. */
export function againJob(delivery: Delivery, pipeline: string, options: { delayMs: number; attempt: number; headers?: Headers | undefined }): OutgoingJob {
  return {
    id: delivery.id,
    job: delivery.job,
    pipeline,
    body: delivery.body,
    contentType: delivery.contentType ?? 'application/octet-stream',
    headers: options.headers ? { ...delivery.headers, ...options.headers } : delivery.headers,
    delayMs: options.delayMs,
    attempt: options.attempt,
    ...(delivery.priority === undefined ? {} : { priority: delivery.priority }),
    ...(delivery.traceparent === undefined ? {} : { traceparent: delivery.traceparent }),
  };
}

/** A job moved to a dead-letter pipeline, with why and after how many attempts in its headers. */
export function deadLetterJob(delivery: Delivery, from: string, to: string, reason: string): OutgoingJob {
  return {
    ...againJob(delivery, to, { delayMs: 0, attempt: delivery.attempt }),
    extra: {
      'x-jobrunner-dead-reason': reason.slice(0, 1024),
      'x-jobrunner-dead-pipeline': from,
      'x-jobrunner-attempts': delivery.attempt,
    },
  };
}
