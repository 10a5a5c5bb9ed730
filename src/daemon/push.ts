// A push request (HTTP API, `jobrunner push`) as the job to publish: one place for ids, payload
// encoding, delays and the pipeline's default priority.

import { randomUUID } from 'node:crypto';
import type { PipelineConfig } from '../config/types.js';
import type { OutgoingJob } from '../drivers/driver.js';
import type { PushRequest } from '../http/server.js';
import { payloadToBody } from '../protocol/payload.js';

export function pushedJob(pipeline: PipelineConfig, req: PushRequest): OutgoingJob {
  const { body, contentType } = payloadToBody(req.payload ?? null, req.encoding);
  return {
    id: req.id ?? randomUUID(),
    job: req.job,
    pipeline: pipeline.name,
    body,
    contentType,
    headers: req.headers ?? {},
    delayMs: Math.max(0, Math.round((req.delay ?? 0) * 1000)),
    priority: req.priority ?? pipeline.options.priority,
    ...(req.traceparent === undefined ? {} : { traceparent: req.traceparent }),
  };
}
