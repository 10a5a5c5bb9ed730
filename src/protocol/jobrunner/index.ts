// Worker protocol v1 (`pool.protocol: jobrunner`, docs/protocol.md): newline-delimited JSON frames on
// stdin/stdout, answers matched by job id, an optional `ready` frame first. Pure, no I/O.

import type { Decoded, FrameDecoder, WorkerEnvContext, WorkerFrame, WorkerJob, WorkerProtocol } from '../codec.js';
import { bodyToPayload, payloadToBody } from '../payload.js';
import { LineSplitter, MAX_LINE_BYTES } from '../../shared/lines.js';
import { encodeFrame } from './encode.js';
import type { FromWorkerFrame, JobFrame } from './frames.js';
import { parseWorkerLine } from './validate.js';

const STOP_LINE = encodeFrame({ type: 'stop' });

/** The v1 job frame for a job (exported for tests). */
export function jobFrame(job: WorkerJob, deadline: string | undefined): JobFrame {
  const { payload, encoding } = bodyToPayload(job.body, job.contentType);
  const frame: JobFrame = {
    type: 'job',
    id: job.id,
    job: job.job,
    pipeline: job.pipeline,
    payload,
    encoding,
    headers: job.headers,
    attempt: job.attempt,
    meta: { driver: job.driver, queue: job.queue, message_id: job.messageId, redelivered: job.redelivered },
  };
  if (deadline !== undefined) frame.deadline = deadline;
  if (job.traceparent !== undefined) frame.trace = { traceparent: job.traceparent };
  return frame;
}

/** A valid v1 frame from a worker in the pool's words. Throws when a publish payload cannot become a body. */
export function toWorkerFrame(f: FromWorkerFrame): WorkerFrame {
  switch (f.type) {
    case 'ready':
      return f.max_concurrency === undefined ? { type: 'ready' } : { type: 'ready', maxConcurrency: f.max_concurrency };
    case 'ack':
      return { type: 'ack', id: f.id };
    case 'touch':
      return { type: 'touch', id: f.id };
    case 'nack': {
      const out: WorkerFrame & { type: 'nack' } = { type: 'nack', id: f.id, error: f.error ?? 'nack' };
      if (f.requeue !== undefined) out.requeue = f.requeue;
      if (f.delay !== undefined) out.delayMs = Math.round(f.delay * 1000);
      if (f.headers !== undefined) out.headers = f.headers;
      return out;
    }
    case 'publish': {
      const { body, contentType } = payloadToBody(f.payload, f.encoding);
      return {
        type: 'publish',
        id: f.id,
        followUp: {
          pipeline: f.pipeline,
          job: f.job,
          body,
          contentType,
          headers: f.headers ?? {},
          delayMs: Math.max(0, Math.round((f.delay ?? 0) * 1000)),
          ...(f.priority === undefined ? {} : { priority: f.priority }),
        },
      };
    }
    default: {
      const never: never = f;
      throw new TypeError(`unhandled frame ${JSON.stringify(never)}`);
    }
  }
}

function decodeLine(line: string): Decoded {
  const parsed = parseWorkerLine(line);
  switch (parsed.kind) {
    case 'not-json':
      return { kind: 'noise', text: line };
    case 'invalid':
      return parsed.id === undefined ? { kind: 'invalid', error: parsed.error } : { kind: 'invalid', error: parsed.error, id: parsed.id };
    case 'frame':
      try {
        return { kind: 'frame', frame: toWorkerFrame(parsed.frame) };
      } catch (err) {
        const error = `${parsed.frame.type} frame cannot be used: ${err instanceof Error ? err.message : String(err)}`;
        return 'id' in parsed.frame ? { kind: 'invalid', error, id: parsed.frame.id } : { kind: 'invalid', error };
      }
  }
}

export const jobrunnerProtocol: WorkerProtocol = {
  name: 'jobrunner',
  multiplexed: true,
  env(ctx: WorkerEnvContext): Record<string, string> {
    return {
      JOBRUNNER_PIPELINE: ctx.pipeline,
      JOBRUNNER_WORKER_ID: String(ctx.workerId),
      JOBRUNNER_PROTOCOL: '1',
      JOBRUNNER_MAX_CONCURRENCY: String(ctx.maxConcurrency),
      RR_MODE: 'jobs',
    };
  },
  encodeJob(job: WorkerJob, deadline: string | undefined): string {
    return encodeFrame(jobFrame(job, deadline));
  },
  encodeStop(): string {
    return STOP_LINE;
  },
  decoder(_ctx, sink): FrameDecoder {
    return new LineSplitter(
      (line) => sink(decodeLine(line)),
      (bytes) => sink({ kind: 'invalid', error: `a stdout line longer than the limit (${bytes} bytes)` }),
      MAX_LINE_BYTES,
    );
  },
};
