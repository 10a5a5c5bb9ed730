// The worker pool of one pipeline (SPEC §4, issue 2 item 4): dispatches job frames to the least-loaded
// worker, matches answers by job id, enforces allocate_timeout, exec_ttl, max_worker_memory and
// max_jobs, replaces dead workers with backoff, and stops gracefully (stop frame, SIGTERM, SIGKILL).
// Hot path (issue 7): no timer per job (one sweeping timer per limit), frames batched per tick.

import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../observability/logger.js';
import type { JobFrame, NackFrame } from '../protocol/frames.js';
import { encodeFrame } from '../protocol/codec.js';
import { parseWorkerLine } from '../protocol/validate.js';
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
const STOP_LINE = encodeFrame({ type: 'stop' });
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

  constructor(private readonly options: PoolOptions) {
    super();
    this.cfg = options.pool;
    this.log = options.logger.child({ pipeline: options.pipeline });
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.restartPolicy = { initialMs: this.timings.restartInitialMs, maxMs: this.timings.restartMaxMs, multiplier: 2, jitter: 0.1 };
    this.hooks = {
      onSpawn: (w) => this.onSpawn(w),
      onSpawnError: (w, err) => this.onSpawnError(w, err),
      onStdoutLine: (w, line) => {
        try {
          this.onLine(w, line);
        } catch (err) {
          // a bug here must not take the daemon down: treat it as this worker's protocol error
          this.protocolError(w, `frame handling failed: ${errorMessage(err)}`);
        }
      },
      onStdoutOverflow: (w, bytes) => this.protocolError(w, `a stdout line longer than the limit (${bytes} bytes)`),
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
    this.baseEnv = {
      ...process.env,
      ...o.env,
      JOBRUNNER_PIPELINE: o.pipeline,
      JOBRUNNER_PROTOCOL: '1',
      JOBRUNNER_MAX_CONCURRENCY: String(this.cfg.maxConcurrency),
      RR_MODE: 'jobs',
    };
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

  run(frame: JobFrame, callbacks: JobCallbacks): Promise<JobOutcome> {
    if (this.stopRequested) return Promise.resolve(RELEASED);
    return new Promise<JobOutcome>((resolve) => {
      const job: PendingJob = { id: frame.id, frame, callbacks, resolve, queuedAt: Date.now(), deadline: 0, worker: undefined, settled: false };
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
    for (const w of this.workers) {
      if (w.state === 'ready' && w.jobs.size >= this.cfg.maxConcurrency) workers.busy++;
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
        w.sendStop(STOP_LINE);
      }
      if (!(await this.allClosed(timeoutMs))) {
        this.log.warn({ workers: this.workers.size, timeoutMs }, 'workers did not exit after stop; sending SIGTERM');
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
    let bestLoad = this.cfg.maxConcurrency;
    // a new worker gets its first job once it has lived through probation: one that dies at start then
    // takes no job with it (see noteDeath), and a death while holding a job is that job's doing
    const probation = Date.now() - this.timings.probationMs;
    for (const w of this.workers) {
      if (w.state !== 'ready' || !w.writable) continue;
      if (!w.answered && w.startedAt > probation) {
        this.drainAfterProbation(w);
        continue;
      }
      const load = w.jobs.size;
      // two jobs with one id on one worker could not be told apart: keep them on different workers
      if (load < bestLoad && !w.jobs.has(job.id)) {
        best = w;
        bestLoad = load;
        if (load === 0) break;
      }
    }
    if (best === undefined) return false;
    this.assign(best, job);
    return true;
  }

  private assign(w: WorkerProcess, job: PendingJob): void {
    const frame = job.frame;
    // run() and drain() hand only jobs not yet assigned here, so the frame is always still there
    if (frame === undefined) throw new JobrunnerError('E_INTERNAL', `job ${job.id} was assigned twice`);
    if (this.cfg.execTtlMs > 0) {
      job.deadline = Date.now() + this.cfg.execTtlMs;
      // many jobs start within one millisecond under load: format the time once per millisecond
      if (job.deadline !== this.lastDeadline) {
        this.lastDeadline = job.deadline;
        this.lastDeadlineIso = new Date(job.deadline).toISOString();
      }
      frame.deadline = this.lastDeadlineIso;
    }
    let line: string;
    try {
      line = encodeFrame(frame);
    } catch (err) {
      job.settled = true;
      job.resolve({ kind: 'failed', code: 'E_WORKER_PROTOCOL', error: `the job frame cannot be encoded: ${errorMessage(err)}` });
      return;
    }
    job.frame = undefined;
    job.worker = w;
    w.jobs.set(job.id, job);
    this.inFlight++;
    w.dispatched++;
    w.write(line);
    if (this.cfg.maxJobs > 0 && w.dispatched >= this.cfg.maxJobs) this.retire(w);
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
    if (w !== undefined && w.state === 'stopping' && w.exitReason === 'max_jobs' && w.jobs.size === 0) this.armRetireTimer(w);
  }

  // ---- frames from workers ----

  private onLine(w: WorkerProcess, line: string): void {
    if (w.killed) return;
    const parsed = parseWorkerLine(line);
    if (parsed.kind === 'not-json') {
      this.log.warn({ pid: w.pid, line: line.length > LOG_LINE_CHARS ? line.slice(0, LOG_LINE_CHARS) + '…' : line }, 'worker wrote a stdout line that is not a JSON frame; ignored');
      return;
    }
    if (parsed.kind === 'invalid') {
      this.protocolError(w, parsed.error, parsed.id);
      return;
    }
    const frame = parsed.frame;
    const job = w.jobs.get(frame.id);
    if (job === undefined) {
      this.protocolError(w, `${frame.type} frame for unknown job id "${cut(frame.id)}"`);
      return;
    }
    if (!w.answered) this.markHealthy(w);
    switch (frame.type) {
      case 'ack':
        this.settle(job, ACK);
        this.drain();
        return;
      case 'nack':
        this.settle(job, nackOutcome(frame));
        this.drain();
        return;
      case 'publish':
        try {
          job.callbacks.onPublish(frame);
        } catch (err) {
          this.log.error({ pid: w.pid, job: frame.id, err }, 'onPublish failed');
        }
        return;
      case 'touch':
        if (job.deadline > 0) job.deadline = Date.now() + this.cfg.execTtlMs;
        try {
          job.callbacks.onTouch();
        } catch (err) {
          this.log.error({ pid: w.pid, job: frame.id, err }, 'onTouch failed');
        }
        return;
      default: {
        const never: never = frame;
        this.protocolError(w, `unhandled frame ${JSON.stringify(never)}`);
      }
    }
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

  /** max_jobs reached: no new jobs, `stop` sent once the frame is out, a replacement started now. */
  private retire(w: WorkerProcess): void {
    w.state = 'stopping';
    w.exitReason = 'max_jobs';
    w.sendStop(STOP_LINE);
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
    if (w.exitReason === 'stop' || w.exitReason === 'max_jobs') return;
    // a crash at start: no answer, and either very early or before any job reached it. A worker that
    // lived through probation and died on a job was killed by that job: replace it at once, or one
    // poison message would hold the whole pool in restart backoff
    const quick = !w.answered && w.dispatched === 0 && Date.now() - w.startedAt < this.timings.healthyAfterMs;
    this.crashLoop = quick ? this.crashLoop + 1 : 0;
  }

  // ---- worker lifecycle ----

  private spawnWorker(): WorkerProcess {
    const w = new WorkerProcess(this.nextWorkerId++, this.hooks);
    this.workers.add(w);
    w.start(this.options.command, { ...this.baseEnv, JOBRUNNER_WORKER_ID: String(w.workerId) });
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
      w.sendStop(STOP_LINE);
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

function nackOutcome(f: NackFrame): JobOutcome {
  const out: { kind: 'nack'; error: string; requeue?: boolean; delayMs?: number; headers?: Record<string, string[]> } = {
    kind: 'nack',
    error: f.error ?? 'nack',
  };
  if (f.requeue !== undefined) out.requeue = f.requeue;
  if (f.delay !== undefined) out.delayMs = Math.round(f.delay * 1000);
  if (f.headers !== undefined) out.headers = f.headers;
  return out;
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
