// Worker protocol `goridge` (`pool.protocol: goridge`, docs/protocol-goridge.md): RoadRunner's pipe
// protocol, so PHP workers written for RoadRunner's jobs plugin (spiral/roadrunner-jobs' Consumer) run
// unchanged. A pid handshake, then one job at a time (answers carry no job id). Pure, no I/O.

import type { Decoded, FrameDecoder as Decoder, WorkerContext, WorkerEnvContext, WorkerFrame, WorkerJob, WorkerProtocol } from '../codec.js';
import { CONTROL, FrameDecoder, encodeControl, type Frame } from './frame.js';
import { encodeJob } from './job.js';
import { parseReply } from './reply.js';

/** The RoadRunner release whose jobs protocol this matches (RR_VERSION; spiral/roadrunner-worker 3.x). */
export const RR_VERSION = '2025.1.0';

/** RoadRunner gives a worker 10 s to exit after the stop frame, then kills it. */
export const STOP_TIMEOUT_MS = 10_000;

const STOP = encodeControl({ stop: true });

/** The worker's answer to the pid frame: a CONTROL frame {"pid":N}, N > 0. undefined when it is one. */
export function checkHello(f: Frame): string | undefined {
  if ((f.flags & CONTROL) === 0) return 'the worker answered the pid frame with a frame that is not a CONTROL frame (a RoadRunner worker answers {"pid":N} first)';
  let v: unknown;
  try {
    v = JSON.parse(f.payload.toString('utf8'));
  } catch {
    return `the worker's answer to the pid frame is not JSON: ${cut(f.payload.toString('utf8'))}`;
  }
  const pid = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['pid'] : undefined;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return `the worker's answer to the pid frame has no "pid" above 0: ${cut(f.payload.toString('utf8'))}`;
  return undefined;
}

/** One frame from a worker that has answered the handshake, in the pool's words. */
export function toDecoded(f: Frame): Decoded {
  const reply = parseReply(f);
  switch (reply.kind) {
    case 'ack':
      return { kind: 'frame', frame: { type: 'ack' } };
    case 'restart':
      return { kind: 'frame', frame: { type: 'restart' } };
    case 'nack': {
      const frame: WorkerFrame & { type: 'nack' } = { type: 'nack', error: reply.error };
      if (reply.requeue === true) frame.requeue = true;
      if (reply.delaySeconds !== undefined) frame.delayMs = reply.delaySeconds * 1000;
      if (reply.headers !== undefined) frame.headers = reply.headers;
      return { kind: 'frame', frame };
    }
    case 'invalid':
      return { kind: 'invalid', error: `the worker sent ${reply.error}` };
    default: {
      const never: never = reply;
      throw new TypeError(`unhandled reply ${JSON.stringify(never)}`);
    }
  }
}

export const goridgeProtocol: WorkerProtocol = {
  name: 'goridge',
  multiplexed: false,
  stopTimeoutMs: STOP_TIMEOUT_MS,
  handshake: {
    hello: (ctx: WorkerContext) => encodeControl({ pid: ctx.daemonPid }),
  },
  env(_ctx: WorkerEnvContext): Record<string, string> {
    return { RR_MODE: 'jobs', RR_RELAY: 'pipes', RR_VERSION };
  },
  encodeJob(job: WorkerJob): Uint8Array {
    return encodeJob({ id: job.id, job: job.job, pipeline: job.pipeline, driver: job.driver, queue: job.queue, headers: job.headers }, job.body);
  },
  encodeStop(): Uint8Array {
    return STOP;
  },
  decoder(_ctx: WorkerContext, sink: (event: Decoded) => void): Decoder {
    let hello = false;
    return new FrameDecoder({
      frame(f) {
        if (hello) {
          sink(toDecoded(f));
          return;
        }
        const problem = checkHello(f);
        if (problem !== undefined) {
          sink({ kind: 'invalid', error: problem });
          return;
        }
        hello = true;
        sink({ kind: 'frame', frame: { type: 'ready', maxConcurrency: 1 } });
      },
      error(message) {
        sink({ kind: 'invalid', error: message });
      },
    });
  },
};

function cut(s: string): string {
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
}
