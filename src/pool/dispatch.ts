// Dispatch: hands each job to the least-loaded worker that takes jobs (ready, or past its probation)
// and has a free slot, or queues it; matches what workers answer to the jobs they hold and settles them.
// Hot path (issue 7): no timer per job, the deadline string formatted once per millisecond.

import type { Chunk, Decoded, WorkerFrame } from '../protocol/codec.js';
import { errorMessage, JobrunnerError } from '../shared/errors.js';
import { ACK, RELEASED, waitingToStart, type PoolContext } from './context.js';
import type { WaitQueue } from './queue.js';
import type { JobOutcome } from './types.js';
import type { PendingJob, WorkerProcess } from './worker.js';

/** longest part of a stray stdout line put in the log */
const LOG_LINE_CHARS = 200;

/** What dispatch asks of supervision. */
export interface DispatchHooks {
  /** max_jobs reached, or the worker asked to be replaced: no new jobs for it, `stop`, a replacement */
  retire(w: WorkerProcess, reason: 'max_jobs' | 'restart'): void;
  /** the worker broke the protocol: fail the job named (or all it holds) and replace it */
  protocolError(w: WorkerProcess, error: string, id?: string): void;
  /** the worker answered its first job: it is healthy */
  answered(w: WorkerProcess): void;
  /** a worker that is stopping has no job left */
  idle(w: WorkerProcess): void;
  /** the worker said ready */
  ready(w: WorkerProcess): void;
}

export class Dispatcher {
  private lastDeadline = 0;
  private lastDeadlineIso = '';
  private probationTimer: NodeJS.Timeout | undefined;
  private probationDue = 0;

  constructor(
    private readonly ctx: PoolContext,
    private readonly queue: WaitQueue,
    private readonly hooks: DispatchHooks,
  ) {}

  /** Places a new job on a worker now, or queues it (behind the jobs already waiting). */
  submit(job: PendingJob): void {
    if (this.queue.size === 0 && this.tryDispatch(job)) return;
    this.queue.push(job);
  }

  /** Moves queued jobs to free slots, oldest first. */
  drain(): void {
    this.queue.drain((job) => this.tryDispatch(job));
  }

  /** Resolves a job once (later outcomes for it are ignored) and frees its slot. */
  settle(job: PendingJob, outcome: JobOutcome): void {
    if (job.settled) return;
    job.settled = true;
    const w = job.worker;
    if (w !== undefined && w.jobs.delete(job.id)) this.ctx.inFlight--;
    if (w !== undefined && (outcome.kind === 'ack' || outcome.kind === 'nack')) w.done++;
    job.resolve(outcome);
    if (w !== undefined && w.state === 'stopping' && w.jobs.size === 0) this.hooks.idle(w);
  }

  stop(): void {
    clearTimeout(this.probationTimer);
    this.probationTimer = undefined;
  }

  /** Hands the job to the least-loaded worker that takes jobs and has a free slot; false when there is none. */
  private tryDispatch(job: PendingJob): boolean {
    let best: WorkerProcess | undefined;
    let bestFree = 0;
    const now = Date.now();
    for (const w of this.ctx.workers) {
      if (w.state !== 'ready' || !w.writable) continue;
      // a worker that has not said `ready` gets its first job once it has lived through probation: one
      // that dies at start then takes no job with it, and a death while holding a job is that job's doing
      if (waitingToStart(this.ctx, w, now)) {
        if (this.ctx.protocol.handshake === undefined) this.drainAfterProbation(w);
        continue;
      }
      const free = w.capacity - w.jobs.size;
      // two jobs with one id on one worker could not be told apart: keep them on different workers
      if (free > bestFree && !w.jobs.has(job.id)) {
        best = w;
        bestFree = free;
        if (w.jobs.size === 0) break;
      }
    }
    if (best === undefined) return false;
    this.assign(best, job);
    return true;
  }

  private assign(w: WorkerProcess, job: PendingJob): void {
    const { cfg, protocol } = this.ctx;
    const work = job.job;
    // submit() and drain() hand only jobs not yet assigned here, so the job is always still there
    if (work === undefined) throw new JobrunnerError('E_INTERNAL', `job ${job.id} was assigned twice`);
    let deadline: string | undefined;
    if (cfg.execTtlMs > 0) {
      // exec_ttl starts now: the job has a free slot of its own on this worker
      job.deadline = Date.now() + cfg.execTtlMs;
      // many jobs start within one millisecond under load: format the time once per millisecond
      if (job.deadline !== this.lastDeadline) {
        this.lastDeadline = job.deadline;
        this.lastDeadlineIso = new Date(job.deadline).toISOString();
      }
      deadline = this.lastDeadlineIso;
    }
    let bytes: Chunk;
    try {
      bytes = protocol.encodeJob(work, deadline);
    } catch (err) {
      job.settled = true;
      job.resolve({ kind: 'failed', code: 'E_WORKER_PROTOCOL', error: `the job cannot be encoded for protocol ${protocol.name}: ${errorMessage(err)}` });
      return;
    }
    job.job = undefined;
    job.worker = w;
    job.assignedAt = Date.now();
    w.jobs.set(job.id, job);
    this.ctx.inFlight++;
    w.dispatched++;
    w.write(bytes);
    if (cfg.maxJobs > 0 && w.dispatched >= cfg.maxJobs) this.hooks.retire(w, 'max_jobs');
  }

  /**
   * a worker on probation: look at the queue again when its probation ends. Workers spawned together
   * (within 50 ms) come off probation together, so the first of them does not take every queued job.
   */
  private drainAfterProbation(w: WorkerProcess): void {
    const due = w.startedAt + this.ctx.timings.probationMs;
    if (this.probationTimer !== undefined) {
      if (due <= this.probationDue || due > this.probationDue + 50) return;
      clearTimeout(this.probationTimer);
    }
    this.probationDue = due;
    this.probationTimer = setTimeout(() => {
      this.probationTimer = undefined;
      if (!this.ctx.stopRequested) this.drain();
    }, Math.max(1, due - Date.now()));
  }

  // ---- what workers say ----

  /** One event of a worker's stdout decoder. */
  onStdout(w: WorkerProcess, event: Decoded): void {
    if (w.killed) return;
    switch (event.kind) {
      case 'noise': {
        const text = event.text;
        this.ctx.log.warn({ pid: w.pid, line: text.length > LOG_LINE_CHARS ? text.slice(0, LOG_LINE_CHARS) + '…' : text }, 'worker wrote stdout output that is not a frame; ignored');
        return;
      }
      case 'invalid':
        this.hooks.protocolError(w, event.error, event.id);
        return;
      case 'frame':
        this.onFrame(w, event.frame);
        return;
      default: {
        const never: never = event;
        this.hooks.protocolError(w, `unhandled decoder event ${JSON.stringify(never)}`);
      }
    }
  }

  private onFrame(w: WorkerProcess, frame: WorkerFrame): void {
    if (frame.type === 'ready') {
      this.onReady(w, frame.maxConcurrency);
      return;
    }
    // an answer of any kind about a job (ack, nack, touch, publish): the worker's stdout flows
    w.lastFrameAt = Date.now();
    const job = this.jobOf(w, frame.id, frame.type);
    if (job === undefined) return;
    if (!w.answered) this.hooks.answered(w);
    switch (frame.type) {
      case 'ack':
        this.settle(job, ACK);
        this.drain();
        return;
      case 'nack': {
        const out: JobOutcome & { kind: 'nack' } = { kind: 'nack', error: frame.error };
        if (frame.requeue !== undefined) out.requeue = frame.requeue;
        if (frame.delayMs !== undefined) out.delayMs = frame.delayMs;
        if (frame.headers !== undefined) out.headers = frame.headers;
        this.settle(job, out);
        this.drain();
        return;
      }
      case 'publish':
        try {
          job.callbacks.onPublish(frame.followUp);
        } catch (err) {
          this.ctx.log.error({ pid: w.pid, job: job.id, err }, 'onPublish failed');
        }
        return;
      case 'touch':
        if (job.deadline > 0) job.deadline = Date.now() + this.ctx.cfg.execTtlMs;
        try {
          job.callbacks.onTouch();
        } catch (err) {
          this.ctx.log.error({ pid: w.pid, job: job.id, err }, 'onTouch failed');
        }
        return;
      case 'restart':
        this.ctx.log.info({ pid: w.pid, job: job.id }, 'worker asked to be replaced; its job goes back to the broker');
        if (w.state !== 'stopping') this.hooks.retire(w, 'restart');
        this.settle(job, RELEASED);
        this.drain();
        return;
      default: {
        const never: never = frame;
        this.hooks.protocolError(w, `unhandled frame ${JSON.stringify(never)}`);
      }
    }
  }

  /** the job an answer is for: by id, or (a protocol without ids) the one job the worker holds */
  private jobOf(w: WorkerProcess, id: string | undefined, type: string): PendingJob | undefined {
    if (id !== undefined) {
      const job = w.jobs.get(id);
      if (job === undefined) this.hooks.protocolError(w, `${type} frame for unknown job id "${cut(id)}"`);
      return job;
    }
    if (w.jobs.size === 1) return w.jobs.values().next().value as PendingJob;
    this.hooks.protocolError(w, w.jobs.size === 0 ? `${type} answer while the worker holds no job` : `${type} answer without a job id while the worker holds ${w.jobs.size} jobs`);
    return undefined;
  }

  /** `ready` (or the handshake's answer): the worker takes jobs now, as many as it can hold */
  private onReady(w: WorkerProcess, announced: number | undefined): void {
    // a ready that arrives after probation handed the worker a job is still its first frame: fine
    if (w.announced || w.answered) {
      this.hooks.protocolError(w, w.announced ? 'a second ready frame' : 'a ready frame after the worker answered a job');
      return;
    }
    w.announced = true;
    w.capacity = this.ctx.protocol.multiplexed ? Math.max(1, Math.min(announced ?? 1, this.ctx.cfg.maxConcurrency)) : 1;
    this.ctx.log.debug({ pid: w.pid, capacity: w.capacity }, 'worker ready');
    this.hooks.ready(w);
    this.drain();
  }
}

function cut(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}
