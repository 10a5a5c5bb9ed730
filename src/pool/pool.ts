// The worker pool of one pipeline (SPEC §4, issue 2 item 4): dispatches jobs to the least-loaded
// worker, matches answers to jobs, enforces allocate_timeout, exec_ttl, max_worker_memory and
// max_jobs, replaces dead workers with backoff, and stops gracefully (stop frame, SIGTERM, SIGKILL).
// It speaks to workers only through a WorkerProtocol (src/protocol/codec.ts): bytes out, frames in.
// Hot path (issue 7): no timer per job (one sweeping timer per limit), frames batched per tick.

import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../observability/logger.js';
import type { Chunk, Decoded, WorkerFrame, WorkerJob, WorkerProtocol } from '../protocol/codec.js';
import { backoffDelay, type BackoffPolicy } from '../shared/backoff.js';
import { errorMessage, JobrunnerError } from '../shared/errors.js';
import type { PoolConfig } from '../config/types.js';
import type {
  FailureCode,
  JobCallbacks,
  JobOutcome,
  PoolEvents,
  PoolOptions,
  PoolStats,
  PoolTimings,
  WorkerExitReason,
  WorkerPool,
  WorkerState,
} from './types.js';
import { WorkerProcess, type PendingJob, type WorkerHooks } from './worker.js';

const DEFAULT_TIMINGS: PoolTimings = {
  restartInitialMs: 100,
  restartMaxMs: 30_000,
  healthyAfterMs: 10_000,
  probationMs: 500,
  memoryPollMs: 1000,
  killGraceMs: 2000,
};

const ACK: JobOutcome = Object.freeze({ kind: 'ack' });
const RELEASED: JobOutcome = Object.freeze({ kind: 'released' });
/** longest part of a stray stdout line put in the log */
const LOG_LINE_CHARS = 200;

export function createPool(options: PoolOptions): WorkerPool {
  return new Pool(options);
}

class Pool extends EventEmitter implements WorkerPool {
  private readonly cfg: PoolConfig;
  private readonly log: Logger;
  private readonly timings: PoolTimings;
  private readonly restartPolicy: BackoffPolicy;
  private readonly workers = new Set<WorkerProcess>();
  private queue: (PendingJob | undefined)[] = [];
  private queueHead = 0;
  private inFlight = 0;
  private crashLoop = 0;
  private nextWorkerId = 1;
  private baseEnv: NodeJS.ProcessEnv | undefined;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private stopRequested = false;
  private respawnTimer: NodeJS.Timeout | undefined;
  private allocateTimer: NodeJS.Timeout | undefined;
  private ttlTimer: NodeJS.Timeout | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  private memoryPolling = false;
  private lastDeadline = 0;
  private lastDeadlineIso = '';
  private readonly hooks: WorkerHooks;
  private readonly protocol: WorkerProtocol;
  private readonly stopFrame: Chunk;

  constructor(private readonly options: PoolOptions) {
    super();
    this.cfg = options.pool;
    this.protocol = options.protocol;
    this.stopFrame = options.protocol.encodeStop();
    this.log = options.logger.child({ pipeline: options.pipeline });
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.restartPolicy = { initialMs: this.timings.restartInitialMs, maxMs: this.timings.restartMaxMs, multiplier: 2, jitter: 0.1 };
    this.hooks = {
      onSpawn: (w) => this.onSpawn(w),
      onSpawnError: (w, err) => this.onSpawnError(w, err),
      onStdout: (w, event) => {
        try {
          this.onStdout(w, event);
        } catch (err) {
          // a bug here must not take the daemon down: treat it as this worker's protocol error
          this.protocolError(w, `frame handling failed: ${errorMessage(err)}`);
        }
      },
      onStderrLine: (w, line) => this.log.info({ pid: w.pid, stream: 'stderr' }, line),
      onDrain: () => this.drain(),
      onClose: (w, code, signal) => this.onClose(w, code, signal),
    };
  }

  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    if (this.stopRequested) return; // stopped before it started: spawn nothing, arm no timer
    const o = this.options;
    this.baseEnv = { ...process.env, ...o.env };
    if (this.cfg.execTtlMs > 0) {
      const tick = Math.min(1000, Math.max(10, Math.floor(this.cfg.execTtlMs / 10)));
      this.ttlTimer = setInterval(() => this.sweepDeadlines(), tick);
    }
    if (this.cfg.maxWorkerMemoryMb > 0) this.memoryTimer = setInterval(() => void this.pollMemory(), this.timings.memoryPollMs);
    const first: WorkerProcess[] = [];
    for (let i = 0; i < Math.max(1, this.cfg.numWorkers); i++) first.push(this.spawnWorker());
    const spawned = await Promise.all(first.map((w) => w.whenSpawned));
    if (!spawned.some(Boolean) && !this.stopRequested) {
      const err = first[0]?.spawnError;
      throw new JobrunnerError('E_WORKER_SPAWN', `pipeline ${o.pipeline}: cannot start worker \`${o.command.join(' ')}\`: ${errorMessage(err)}`, { cause: err });
    }
  }

  run(work: WorkerJob, callbacks: JobCallbacks): Promise<JobOutcome> {
    if (this.stopRequested) return Promise.resolve(RELEASED);
    return new Promise<JobOutcome>((resolve) => {
      const job: PendingJob = { id: work.id, job: work, callbacks, resolve, queuedAt: Date.now(), deadline: 0, worker: undefined, settled: false };
      if (this.queueHead === this.queue.length && this.tryDispatch(job)) return;
      this.queue.push(job);
      if (this.allocateTimer === undefined && this.cfg.allocateTimeoutMs > 0) {
        this.allocateTimer = setTimeout(() => this.sweepQueue(), this.cfg.allocateTimeoutMs);
      }
    });
  }

  stats(): PoolStats {
    const workers: Record<WorkerState, number> = { starting: 0, ready: 0, busy: 0, stopping: 0 };
    const now = Date.now();
    let healthy = false;
    const probation = now - this.timings.probationMs;
    const handshake = this.protocol.handshake !== undefined;
    for (const w of this.workers) {
      // not yet taking jobs: no ready (or handshake answer) yet, and still in probation
      if (w.state === 'ready' && !w.announced && (handshake || (!w.answered && w.startedAt > probation))) workers.starting++;
      else if (w.state === 'ready' && w.jobs.size >= w.capacity) workers.busy++;
      else workers[w.state]++;
      if (w.state === 'ready' && (w.answered || now - w.startedAt >= this.timings.healthyAfterMs)) healthy = true;
    }
    if (healthy) this.crashLoop = 0;
    return { workers, inFlight: this.inFlight, queued: this.queue.length - this.queueHead, crashLoop: this.crashLoop };
  }

  override on<E extends keyof PoolEvents>(event: E, listener: PoolEvents[E]): this {
    return super.on(event, listener);
  }

  stop(timeoutMs: number): Promise<void> {
    this.stopPromise ??= this.doStop(timeoutMs);
    return this.stopPromise;
  }

  private async doStop(timeoutMs: number): Promise<void> {
    this.stopRequested = true;
    clearTimeout(this.respawnTimer);
    clearTimeout(this.allocateTimer);
    clearTimeout(this.probationTimer);
    this.respawnTimer = this.allocateTimer = undefined;
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]?.resolve(RELEASED);
    this.queue = [];
    this.queueHead = 0;
    try {
      for (const w of this.workers) {
        w.exitReason ??= 'stop';
        w.state = 'stopping';
        w.sendStop(this.stopFrame);
      }
      const grace = Math.min(timeoutMs, this.protocol.stopTimeoutMs ?? timeoutMs);
      if (!(await this.allClosed(grace))) {
        this.log.warn({ workers: this.workers.size, timeoutMs: grace }, 'workers did not exit after stop; sending SIGTERM');
        for (const w of this.workers) w.signal('SIGTERM');
        if (!(await this.allClosed(this.timings.killGraceMs))) {
          this.log.warn({ workers: this.workers.size }, 'workers did not exit after SIGTERM; sending SIGKILL');
          for (const w of this.workers) w.signal('SIGKILL');
          if (!(await this.allClosed(this.timings.killGraceMs))) this.log.error({ workers: this.workers.size }, 'workers still running after SIGKILL');
        }
      }
    } finally {
      clearInterval(this.ttlTimer);
      clearInterval(this.memoryTimer);
      this.ttlTimer = this.memoryTimer = undefined;
    }
  }

  /** true when every worker closed within ms */
  private async allClosed(ms: number): Promise<boolean> {
    if (this.workers.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const all = Promise.all([...this.workers].map((w) => w.whenClosed)).then(() => true);
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- dispatch ----

  /** Hands the job to the least-loaded ready worker with a free slot; false when there is none. */
  private tryDispatch(job: PendingJob): boolean {
    let best: WorkerProcess | undefined;
    let bestFree = 0;
    // a new worker that has not said `ready` gets its first job once it has lived through probation:
    // one that dies at start then takes no job with it (see noteDeath), and a death while holding a
    // job is that job's doing. With a handshake, it gets none before its answer.
    const probation = Date.now() - this.timings.probationMs;
    const handshake = this.protocol.handshake !== undefined;
    for (const w of this.workers) {
      if (w.state !== 'ready' || !w.writable) continue;
      if (!w.announced) {
        if (handshake) continue;
        if (!w.answered && w.startedAt > probation) {
          this.drainAfterProbation(w);
          continue;
        }
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
    const work = job.job;
    // run() and drain() hand only jobs not yet assigned here, so the job is always still there
    if (work === undefined) throw new JobrunnerError('E_INTERNAL', `job ${job.id} was assigned twice`);
    let deadline: string | undefined;
    if (this.cfg.execTtlMs > 0) {
      job.deadline = Date.now() + this.cfg.execTtlMs;
      // many jobs start within one millisecond under load: format the time once per millisecond
      if (job.deadline !== this.lastDeadline) {
        this.lastDeadline = job.deadline;
        this.lastDeadlineIso = new Date(job.deadline).toISOString();
      }
      deadline = this.lastDeadlineIso;
    }
    let bytes: Chunk;
    try {
      bytes = this.protocol.encodeJob(work, deadline);
    } catch (err) {
      job.settled = true;
      job.resolve({ kind: 'failed', code: 'E_WORKER_PROTOCOL', error: `the job cannot be encoded for protocol ${this.protocol.name}: ${errorMessage(err)}` });
      return;
    }
    job.job = undefined;
    job.worker = w;
    w.jobs.set(job.id, job);
    this.inFlight++;
    w.dispatched++;
    w.write(bytes);
    if (this.cfg.maxJobs > 0 && w.dispatched >= this.cfg.maxJobs) this.retire(w, 'max_jobs');
  }

  private probationTimer: NodeJS.Timeout | undefined;
  private probationDue = 0;

  /**
   * a worker on probation: look at the queue again when its probation ends. Workers spawned together
   * (within 50 ms) come off probation together, so the first of them does not take every queued job.
   */
  private drainAfterProbation(w: WorkerProcess): void {
    const due = w.startedAt + this.timings.probationMs;
    if (this.probationTimer !== undefined) {
      if (due <= this.probationDue || due > this.probationDue + 50) return;
      clearTimeout(this.probationTimer);
    }
    this.probationDue = due;
    this.probationTimer = setTimeout(() => {
      this.probationTimer = undefined;
      if (!this.stopRequested) this.drain();
    }, Math.max(1, due - Date.now()));
  }

  /** Moves queued jobs to free slots, oldest first. */
  private drain(): void {
    while (this.queueHead < this.queue.length) {
      const job = this.queue[this.queueHead] as PendingJob;
      if (!this.tryDispatch(job)) return;
      this.queue[this.queueHead++] = undefined;
    }
    if (this.queueHead > 0) {
      this.queue = [];
      this.queueHead = 0;
    }
  }

  /** allocate_timeout: one timer for the queue, set for its oldest job (FIFO, so oldest expires first). */
  private sweepQueue(): void {
    this.allocateTimer = undefined;
    const limit = this.cfg.allocateTimeoutMs;
    const now = Date.now();
    while (this.queueHead < this.queue.length) {
      const job = this.queue[this.queueHead] as PendingJob;
      const wait = job.queuedAt + limit - now;
      if (wait > 0) {
        this.allocateTimer = setTimeout(() => this.sweepQueue(), wait);
        return;
      }
      this.queue[this.queueHead++] = undefined;
      job.settled = true;
      job.resolve({ kind: 'failed', code: 'E_ALLOCATE_TIMEOUT', error: `no worker was free within allocate_timeout (${limit} ms)` });
    }
    this.queue = [];
    this.queueHead = 0;
  }

  private settle(job: PendingJob, outcome: JobOutcome): void {
    if (job.settled) return;
    job.settled = true;
    const w = job.worker;
    if (w !== undefined && w.jobs.delete(job.id)) this.inFlight--;
    job.resolve(outcome);
    if (w !== undefined && w.state === 'stopping' && (w.exitReason === 'max_jobs' || w.exitReason === 'restart') && w.jobs.size === 0) this.armRetireTimer(w);
  }

  // ---- frames from workers ----

  private onStdout(w: WorkerProcess, event: Decoded): void {
    if (w.killed) return;
    switch (event.kind) {
      case 'noise': {
        const text = event.text;
        this.log.warn({ pid: w.pid, line: text.length > LOG_LINE_CHARS ? text.slice(0, LOG_LINE_CHARS) + '…' : text }, 'worker wrote stdout output that is not a frame; ignored');
        return;
      }
      case 'invalid':
        this.protocolError(w, event.error, event.id);
        return;
      case 'frame':
        this.onFrame(w, event.frame);
        return;
      default: {
        const never: never = event;
        this.protocolError(w, `unhandled decoder event ${JSON.stringify(never)}`);
      }
    }
  }

  private onFrame(w: WorkerProcess, frame: WorkerFrame): void {
    if (frame.type === 'ready') {
      this.onReady(w, frame.maxConcurrency);
      return;
    }
    const job = this.jobOf(w, frame.id, frame.type);
    if (job === undefined) return;
    if (!w.answered) this.markHealthy(w);
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
          this.log.error({ pid: w.pid, job: job.id, err }, 'onPublish failed');
        }
        return;
      case 'touch':
        if (job.deadline > 0) job.deadline = Date.now() + this.cfg.execTtlMs;
        try {
          job.callbacks.onTouch();
        } catch (err) {
          this.log.error({ pid: w.pid, job: job.id, err }, 'onTouch failed');
        }
        return;
      case 'restart':
        this.log.info({ pid: w.pid, job: job.id }, 'worker asked to be replaced; its job goes back to the broker');
        this.settle(job, RELEASED);
        if (w.state !== 'stopping') this.retire(w, 'restart');
        this.drain();
        return;
      default: {
        const never: never = frame;
        this.protocolError(w, `unhandled frame ${JSON.stringify(never)}`);
      }
    }
  }

  /** the job an answer is for: by id, or (a protocol without ids) the one job the worker holds */
  private jobOf(w: WorkerProcess, id: string | undefined, type: string): PendingJob | undefined {
    if (id !== undefined) {
      const job = w.jobs.get(id);
      if (job === undefined) this.protocolError(w, `${type} frame for unknown job id "${cut(id)}"`);
      return job;
    }
    if (w.jobs.size === 1) return w.jobs.values().next().value as PendingJob;
    this.protocolError(w, w.jobs.size === 0 ? `${type} answer while the worker holds no job` : `${type} answer without a job id while the worker holds ${w.jobs.size} jobs`);
    return undefined;
  }

  /** `ready` (or the handshake's answer): the worker takes jobs now, as many as it can hold */
  private onReady(w: WorkerProcess, announced: number | undefined): void {
    // a ready that arrives after probation handed the worker a job is still its first frame: fine
    if (w.announced || w.answered) {
      this.protocolError(w, w.announced ? 'a second ready frame' : 'a ready frame after the worker answered a job');
      return;
    }
    w.announced = true;
    clearTimeout(w.startTimer);
    w.startTimer = undefined;
    w.capacity = this.protocol.multiplexed ? Math.max(1, Math.min(announced ?? 1, this.cfg.maxConcurrency)) : 1;
    this.log.debug({ pid: w.pid, capacity: w.capacity }, 'worker ready');
    this.emit('worker-ready', { pid: w.pid, workerId: w.workerId, capacity: w.capacity });
    this.drain();
  }

  private protocolError(w: WorkerProcess, error: string, id?: string): void {
    if (w.killed) return;
    this.log.warn({ pid: w.pid, error }, 'worker broke the protocol; replacing it');
    const culprit = id === undefined ? undefined : w.jobs.get(id);
    const message = `worker ${w.pid} broke the protocol: ${error}`;
    if (culprit === undefined) this.kill(w, 'protocol', 'E_WORKER_PROTOCOL', message);
    else this.kill(w, 'protocol', 'E_WORKER_CRASH', `worker ${w.pid} was replaced after a protocol error on another job`, [culprit], 'E_WORKER_PROTOCOL', message);
  }

  // ---- supervision ----

  /** exec_ttl: one sweeping timer for every job of the pool. */
  private sweepDeadlines(): void {
    const now = Date.now();
    for (const w of this.workers) {
      if (w.killed) continue;
      let late: PendingJob[] | undefined;
      for (const job of w.jobs.values()) if (job.deadline > 0 && job.deadline <= now) (late ??= []).push(job);
      if (late === undefined) continue;
      const ttl = this.cfg.execTtlMs;
      this.log.warn({ pid: w.pid, jobs: late.map((j) => j.id), execTtlMs: ttl }, 'job ran past exec_ttl; killing its worker');
      this.kill(w, 'timeout', 'E_WORKER_CRASH', `worker ${w.pid} was killed: another job it held ran past exec_ttl`, late, 'E_WORKER_TIMEOUT', `job ran past exec_ttl (${ttl} ms); worker ${w.pid} killed`);
    }
  }

  private async pollMemory(): Promise<void> {
    if (this.memoryPolling) return;
    this.memoryPolling = true;
    const limitKb = this.cfg.maxWorkerMemoryMb * 1024;
    try {
      await Promise.all(
        [...this.workers].map(async (w) => {
          if (w.pid === 0 || w.killed || w.closed) return;
          const rssKb = await readRssKb(w.pid);
          if (rssKb === undefined || rssKb <= limitKb || w.killed || w.closed) return;
          const mb = Math.round(rssKb / 1024);
          this.log.warn({ pid: w.pid, rssMb: mb, limitMb: this.cfg.maxWorkerMemoryMb }, 'worker over max_worker_memory; killing it');
          this.kill(w, 'memory', 'E_WORKER_MEMORY', `worker ${w.pid} used ${mb} MB, over max_worker_memory (${this.cfg.maxWorkerMemoryMb} MB); killed`);
        }),
      );
    } finally {
      this.memoryPolling = false;
    }
  }

  /**
   * SIGKILLs a worker and fails its jobs at once: `culprits` with culpritCode, the rest with code.
   * A replacement is started (with backoff when this was a quick death).
   */
  private kill(w: WorkerProcess, reason: WorkerExitReason, code: FailureCode, error: string, culprits: PendingJob[] = [], culpritCode: FailureCode = code, culpritError: string = error): void {
    if (w.killed) return;
    w.killed = true;
    w.exitReason = reason;
    w.state = 'stopping';
    w.signal('SIGKILL');
    this.noteDeath(w);
    for (const job of culprits) this.settle(job, { kind: 'failed', code: culpritCode, error: culpritError });
    // when the culprit is known, the other jobs it held did nothing wrong: they go back to the broker
    // without spending an attempt; when it is not (memory), every job it held failed with it
    const bystander: JobOutcome = culprits.length > 0 ? RELEASED : { kind: 'failed', code, error };
    if (culprits.length > 0 && w.jobs.size > 0) this.log.info({ pid: w.pid, jobs: w.jobs.size, reason }, 'returning the other jobs of a killed worker to the broker');
    for (const job of [...w.jobs.values()]) this.settle(job, bystander);
    this.replenish();
    this.drain();
  }

  /** max_jobs reached, or the worker asked for it: no new jobs, `stop` sent after what is queued, a replacement started now. */
  private retire(w: WorkerProcess, reason: 'max_jobs' | 'restart'): void {
    w.state = 'stopping';
    w.exitReason = reason;
    w.sendStop(this.stopFrame);
    if (w.jobs.size === 0) this.armRetireTimer(w);
    this.replenish();
  }

  /** a retired worker with no jobs left gets destroy_timeout to exit before it is killed */
  private armRetireTimer(w: WorkerProcess): void {
    if (w.retireTimer !== undefined || w.closed) return;
    w.retireTimer = setTimeout(() => {
      w.retireTimer = undefined;
      if (!w.closed) {
        this.log.warn({ pid: w.pid }, 'retired worker did not exit after stop; killing it');
        w.signal('SIGKILL');
      }
    }, Math.max(1000, this.cfg.destroyTimeoutMs));
  }

  private markHealthy(w: WorkerProcess): void {
    w.answered = true;
    if (this.crashLoop === 0) return;
    this.crashLoop = 0;
    if (this.respawnTimer !== undefined) {
      clearTimeout(this.respawnTimer);
      this.respawnTimer = undefined;
      this.replenish();
    }
  }

  /** counts a quick, unplanned death (no answer, short life) towards the crash loop */
  private noteDeath(w: WorkerProcess): void {
    if (w.deathNoted) return;
    w.deathNoted = true;
    if (w.exitReason === 'stop' || w.exitReason === 'max_jobs' || w.exitReason === 'restart') return;
    // a crash at start: no answer, and either very early or before any job reached it. A worker that
    // lived through probation and died on a job was killed by that job: replace it at once, or one
    // poison message would hold the whole pool in restart backoff
    const quick = !w.answered && w.dispatched === 0 && Date.now() - w.startedAt < this.timings.healthyAfterMs;
    this.crashLoop = quick ? this.crashLoop + 1 : 0;
  }

  // ---- worker lifecycle ----

  private spawnWorker(): WorkerProcess {
    const w = new WorkerProcess(this.nextWorkerId++, this.hooks);
    // one job at a time until its ready frame says it can hold more: a plain read-answer-read loop is
    // always right, and exec_ttl never runs for a job waiting behind another in a serial worker's stdin
    w.capacity = 1;
    this.workers.add(w);
    const env = this.protocol.env({ pipeline: this.options.pipeline, workerId: w.workerId, maxConcurrency: this.cfg.maxConcurrency });
    w.start(this.options.command, { ...this.baseEnv, ...env }, this.protocol, this.options.pipeline, this.options.cwd);
    return w;
  }

  /** keeps num_workers live workers; after quick deaths, one spawn per backoff delay */
  private replenish(): void {
    if (this.stopRequested || this.respawnTimer !== undefined) return;
    const target = Math.max(1, this.cfg.numWorkers);
    while (this.activeCount() < target) {
      if (this.crashLoop > 0) {
        const delay = backoffDelay(this.restartPolicy, this.crashLoop);
        this.respawnTimer = setTimeout(() => {
          this.respawnTimer = undefined;
          if (this.stopRequested) return;
          if (this.activeCount() < target) this.spawnWorker();
          this.replenish();
        }, delay);
        return;
      }
      this.spawnWorker();
    }
  }

  private activeCount(): number {
    let n = 0;
    for (const w of this.workers) if (w.state !== 'stopping') n++;
    return n;
  }

  private onSpawn(w: WorkerProcess): void {
    this.log.info({ pid: w.pid, workerId: w.workerId }, 'worker started');
    this.emit('worker-start', { pid: w.pid, workerId: w.workerId });
    if (this.stopRequested) {
      w.state = 'stopping';
      w.exitReason ??= 'stop';
      w.sendStop(this.stopFrame);
      return;
    }
    const handshake = this.protocol.handshake;
    if (handshake !== undefined) {
      w.write(handshake.hello({ pipeline: this.options.pipeline, workerId: w.workerId, pid: w.pid, daemonPid: process.pid }));
      const limit = handshake.timeoutMs ?? this.cfg.allocateTimeoutMs;
      if (limit > 0) {
        w.startTimer = setTimeout(() => {
          w.startTimer = undefined;
          if (w.announced || w.killed || w.closed) return;
          this.log.warn({ pid: w.pid, timeoutMs: limit, protocol: this.protocol.name }, 'worker did not answer the start handshake; killing it');
          this.kill(w, 'start_timeout', 'E_WORKER_CRASH', `worker ${w.pid} did not answer the ${this.protocol.name} handshake within ${limit} ms`);
        }, limit);
      }
      return;
    }
    this.drain();
  }

  private onSpawnError(w: WorkerProcess, err: Error): void {
    w.exitReason = 'spawn_error';
    this.log.error({ code: 'E_WORKER_SPAWN', command: this.options.command.join(' '), workerId: w.workerId, err: errorMessage(err) }, 'cannot start worker');
  }

  private onClose(w: WorkerProcess, code: number | null, signal: string | null): void {
    this.workers.delete(w);
    if (w.exitReason === undefined) w.exitReason = this.stopRequested ? 'stop' : 'crash';
    const reason = w.exitReason;
    this.noteDeath(w);
    if (w.jobs.size > 0) {
      const how = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
      const error = `worker ${w.pid} exited (${how}) while it held the job`;
      for (const job of [...w.jobs.values()]) this.settle(job, { kind: 'failed', code: 'E_WORKER_CRASH', error });
    }
    if (reason !== 'spawn_error') {
      const level = reason === 'crash' ? 'warn' : 'info';
      this.log[level]({ pid: w.pid, workerId: w.workerId, reason, code, signal }, 'worker exited');
    }
    this.emit('worker-exit', { pid: w.pid, workerId: w.workerId, reason, code, signal });
    this.replenish();
    this.drain();
  }
}

/** VmRSS of a process in kB (Linux /proc); undefined when it cannot be read */
async function readRssKb(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function cut(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}
