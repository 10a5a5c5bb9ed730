// RoadRunner's jobs RPC methods (jobs.Push, PushBatch, Pause, Resume, List, Stat, Declare, Destroy) on
// top of the daemon's control surface: what PHP's Spiral\RoadRunner\Jobs\Jobs calls (docs/rpc.md).

import { isUtf8 } from 'node:buffer';
import { RawJson, type Encoding } from '../protocol/payload.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import type { BodyCodec } from './frames.js';
import { decodeBody, encodeBody } from './proto.js';

/** A job to push, as the HTTP API's push takes it. */
export interface RpcPush {
  job: string;
  payload: unknown;
  encoding: Encoding;
  headers: Record<string, string[]>;
  /** seconds */
  delay: number;
  priority?: number;
  id?: string;
}

/** What the RPC server needs of the daemon. */
export interface RpcControl {
  /** publishes and resolves after the broker's confirm, with the job's id */
  push(pipeline: string, req: RpcPush): Promise<string>;
  pause(pipeline: string): Promise<void>;
  resume(pipeline: string): Promise<void>;
  pipelineNames(): string[];
  listPipelines(): Promise<Array<{ pipeline: string; driver: string; queue: string; consuming: boolean; active: number; delayed: number | null; reserved: number; priority: number }>>;
  /** jobs.Declare: a pipeline from RoadRunner's string map (name, driver, driver keys), consumed at once */
  declarePipeline(settings: Record<string, string>): Promise<void>;
  /** jobs.Destroy: stops a pipeline (its held jobs go back to the broker) and forgets it */
  destroyPipeline(name: string): Promise<void>;
}

interface WireJob {
  job: string;
  id: string;
  payload: Buffer;
  headers: Record<string, { value: string[] }>;
  options?: { priority: number; pipeline: string; delay: number; auto_ack: boolean } | null;
}

/** Runs one call; resolves with the answer's body, rejects with a JobrunnerError (answered as ERROR). */
export async function callJobs(control: RpcControl, method: string, codec: BodyCodec, body: Buffer): Promise<Uint8Array> {
  switch (method) {
    case 'jobs.Push': {
      const { job } = decodeBody<{ job?: WireJob | null }>('PushRequest', codec, body);
      if (!job) throw new JobrunnerError('E_RPC', 'jobs.Push needs a job');
      await pushOne(control, job);
      return encodeBody('Empty', codec, {});
    }
    case 'jobs.PushBatch': {
      const { jobs } = decodeBody<{ jobs: WireJob[] }>('PushBatchRequest', codec, body);
      // every job is checked before any is published: a bad one fails the batch with nothing sent
      const pushes = jobs.map((j) => toPush(j));
      const results = await Promise.allSettled(pushes.map(([pipeline, req]) => control.push(pipeline, req)));
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${pushes[i]?.[1].id ?? i}: ${errorMessage(r.reason)}`] : []));
      if (failed.length > 0) throw new JobrunnerError('E_PUBLISH', `${failed.length} of ${jobs.length} jobs were not pushed (the others were): ${failed.join('; ')}`);
      return encodeBody('Empty', codec, {});
    }
    case 'jobs.Pause':
    case 'jobs.Resume': {
      const { pipelines } = decodeBody<{ pipelines: string[] }>('Pipelines', codec, body);
      for (const name of pipelines) {
        known(control, name);
        if (method === 'jobs.Pause') await control.pause(name);
        else await control.resume(name);
      }
      return encodeBody('Empty', codec, {});
    }
    case 'jobs.List':
      return encodeBody('Pipelines', codec, { pipelines: control.pipelineNames() });
    case 'jobs.Stat': {
      const list = await control.listPipelines();
      const stats = list.map((p) => ({
        pipeline: p.pipeline,
        driver: p.driver,
        queue: p.queue,
        active: p.active,
        delayed: p.delayed ?? 0,
        reserved: p.reserved,
        ready: p.consuming,
        priority: p.priority,
      }));
      return encodeBody('Stats', codec, { stats });
    }
    case 'jobs.Declare': {
      const { pipeline } = decodeBody<{ pipeline: Record<string, string> }>('DeclareRequest', codec, body);
      await control.declarePipeline(pipeline);
      return encodeBody('Empty', codec, {});
    }
    case 'jobs.Destroy': {
      const { pipelines } = decodeBody<{ pipelines: string[] }>('Pipelines', codec, body);
      for (const name of pipelines) known(control, name);
      for (const name of pipelines) await control.destroyPipeline(name);
      return encodeBody('Pipelines', codec, { pipelines });
    }
    default:
      throw new JobrunnerError('E_RPC', `unknown method ${JSON.stringify(method)} (jobrunner serves jobs.Push, jobs.PushBatch, jobs.Pause, jobs.Resume, jobs.List, jobs.Stat, jobs.Declare, jobs.Destroy)`);
  }
}

function known(control: RpcControl, name: string): void {
  if (!control.pipelineNames().includes(name)) {
    throw new JobrunnerError('E_PIPELINE_UNKNOWN', `no pipeline named ${JSON.stringify(name)} (known: ${control.pipelineNames().join(', ')})`);
  }
}

async function pushOne(control: RpcControl, job: WireJob): Promise<void> {
  const [pipeline, req] = toPush(job);
  await control.push(pipeline, req);
}

/** A wire job as a push: the body exactly as the producer sent it, headers, delay in seconds, priority. */
function toPush(job: WireJob): [string, RpcPush] {
  const options = job.options ?? undefined;
  const pipeline = options?.pipeline ?? '';
  if (pipeline === '') throw new JobrunnerError('E_RPC', `job ${JSON.stringify(job.id)} names no pipeline (options.pipeline)`);
  if (job.job === '') throw new JobrunnerError('E_RPC', `job ${JSON.stringify(job.id)} has no name (job)`);
  const delay = options?.delay ?? 0;
  if (!Number.isSafeInteger(delay) || delay < 0) throw new JobrunnerError('E_RPC', `job ${JSON.stringify(job.id)}: delay ${delay} is not a number of seconds >= 0`);
  const priority = options?.priority ?? 0;
  if (!Number.isSafeInteger(priority)) throw new JobrunnerError('E_RPC', `job ${JSON.stringify(job.id)}: priority ${priority} is out of range`);
  const headers: Record<string, string[]> = {};
  for (const [name, h] of Object.entries(job.headers)) headers[name] = h.value;
  const req: RpcPush = { job: job.job, ...asPayload(job.payload), headers, delay };
  // 0 is protobuf's "not set": the pipeline's own priority then applies, as in RoadRunner
  if (priority !== 0) req.priority = priority;
  if (job.id !== '') req.id = job.id;
  return [pipeline, req];
}

/** The body's bytes as a push payload that turns back into exactly those bytes. */
function asPayload(body: Buffer): { payload: unknown; encoding: Encoding } {
  if (!isUtf8(body)) return { payload: body.toString('base64'), encoding: 'base64' };
  const text = body.toString('utf8');
  try {
    JSON.parse(text);
  } catch {
    return { payload: text, encoding: 'text' };
  }
  return { payload: new RawJson(text), encoding: 'json' };
}
