// The worker pool of one pipeline (SPEC §4): its lifecycle. It builds the parts and wires them:
// queue.ts (the wait queue and allocate_timeout), dispatch.ts (least-loaded choice, readiness, the
// answers), supervise.ts (exec_ttl, memory, handshake deadline, crash loop, respawn, retire), and here:
// start, spawning workers, their exits, stats, and a graceful stop (stop frame, SIGTERM, SIGKILL).
// It speaks to workers only through a WorkerProtocol (src/protocol/codec.ts): bytes out, frames in.

import { EventEmitter } from 'node:events';
import { errorMessage, JobrunnerError } from '../shared/errors.js';
import { DEFAULT_TIMINGS, RELEASED, waitingToStart, type PoolContext } from './context.js';
import { Dispatcher } from './dispatch.js';
import { WaitQueue } from './queue.js';
import { readRssKb, Supervisor } from './supervise.js';
import type { JobCallbacks, JobOutcome, PoolEvents, PoolOptions, PoolStats, WorkerInfo, WorkerJob, WorkerPool, WorkerState } from './types.js';
import { WorkerProcess, type PendingJob, type WorkerHooks } from './worker.js';

export function createPool(options: PoolOptions): WorkerPool {
  return new Pool(options);
}

class Pool extends EventEmitter implements WorkerPool {
  private readonly ctx: PoolContext;
  private readonly queue: WaitQueue;
  private readonly dispatch: Dispatcher;
  private readonly supervisor: Supervisor;
  private readonly hooks: WorkerHooks;
  private nextWorkerId = 1;
  private baseEnv: NodeJS.ProcessEnv | undefined;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private resetPromise: Promise<void> | undefined;
  restarts = 0;

  constructor(private readonly options: PoolOptions) {
    super();
    this.ctx = {
      pipeline: options.pipeline,
      cfg: options.pool,
      timings: { ...DEFAULT_TIMINGS, ...options.timings },
      log: options.logger.child({ pipeline: options.pipeline }),
      protocol: options.protocol,
      stopFrame: options.protocol.encodeStop(),
      workers: new Set(),
      stopRequested: false,
      inFlight: 0,
    };
    this.queue = new WaitQueue(options.pool.allocateTimeoutMs);
    this.supervisor = new Supervisor(this.ctx, {
      settle: (job, outcome) => this.dispatch.settle(job, outcome),
      drain: () => this.dispatch.drain(),
      spawn: () => void this.spawnWorker(),
    });
    const sup = this.supervisor;
    this.dispatch = new Dispatcher(this.ctx, this.queue, {
      retire: (w, reason) => sup.retire(w, reason),
      protocolError: (w, error, id) => sup.protocolError(w, error, id),
      answered: (w) => sup.answered(w),
      idle: (w) => sup.idle(w),
      ready: (w) => {
        sup.ready(w);
        this.emit('worker-ready', { pid: w.pid, workerId: w.workerId, capacity: w.capacity });
      },
    });
    this.hooks = {
      onSpawn: (w) => this.onSpawn(w),
      onSpawnError: (w, err) => this.onSpawnError(w, err),
      onStdoutClosed: (w) => {
        this.ctx.log.warn({ pid: w.pid, jobs: w.jobs.size }, 'worker closed its stdout but keeps running: it can answer no job; replacing it');
        this.supervisor.kill(w, 'protocol', 'E_WORKER_CRASH', `worker ${w.pid} closed its stdout: it could not answer the job`);
      },
      onStdout: (w, event) => {
        try {
          this.dispatch.onStdout(w, event);
        } catch (err) {
          // a bug here must not take the daemon down: treat it as this worker's protocol error
          sup.protocolError(w, `frame handling failed: ${errorMessage(err)}`);
        }
      },
      onStderrLine: (w, line) => this.ctx.log.info({ pid: w.pid, stream: 'stderr' }, line),
      onDrain: () => this.dispatch.drain(),
      onClose: (w, code, signal) => this.onClose(w, code, signal),
    };
  }

  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    if (this.ctx.stopRequested) return; // stopped before it started: spawn nothing, arm no timer
    const o = this.options;
    this.baseEnv = { ...process.env, ...o.env };
    this.supervisor.start();
    const first: WorkerProcess[] = [];
    for (let i = 0; i < Math.max(1, this.ctx.cfg.numWorkers); i++) first.push(this.spawnWorker());
    const spawned = await Promise.all(first.map((w) => w.whenSpawned));
    if (!spawned.some(Boolean) && !this.ctx.stopRequested) {
      const err = first[0]?.spawnError;
      throw new JobrunnerError('E_WORKER_SPAWN', `pipeline ${o.pipeline}: cannot start worker \`${o.command.join(' ')}\`: ${errorMessage(err)}`, { cause: err });
    }
  }

  run(work: WorkerJob, callbacks: JobCallbacks): Promise<JobOutcome> {
    if (this.ctx.stopRequested) return Promise.resolve(RELEASED);
    return new Promise<JobOutcome>((resolve) => {
      const job: PendingJob = { id: work.id, job: work, callbacks, resolve, queuedAt: Date.now(), deadline: 0, worker: undefined, settled: false };
      this.dispatch.submit(job);
    });
  }

  stats(): PoolStats {
    const workers: Record<WorkerState, number> = { starting: 0, ready: 0, busy: 0, stopping: 0 };
    const now = Date.now();
    let healthy = false;
    for (const w of this.ctx.workers) {
      if (w.state === 'ready' && waitingToStart(this.ctx, w, now)) workers.starting++;
      else if (w.state === 'ready' && w.jobs.size >= w.capacity) workers.busy++;
      else workers[w.state]++;
      if (w.state === 'ready' && (w.answered || now - w.startedAt >= this.ctx.timings.healthyAfterMs)) healthy = true;
    }
    if (healthy) {
      this.supervisor.crashLoop = 0;
      this.supervisor.lastError = undefined;
    }
    const lastError = this.supervisor.crashLoop > 0 ? this.supervisor.lastError : undefined;
    return { workers, inFlight: this.ctx.inFlight, queued: this.queue.size, crashLoop: this.supervisor.crashLoop, ...(lastError === undefined ? {} : { lastError }) };
  }

  async workers(): Promise<WorkerInfo[]> {
    const now = Date.now();
    return Promise.all(
      [...this.ctx.workers].map(async (w): Promise<WorkerInfo> => {
        let oldest = now;
        for (const job of w.jobs.values()) if (job.assignedAt !== undefined && job.assignedAt < oldest) oldest = job.assignedAt;
        const state: WorkerState =
          w.state === 'ready' && waitingToStart(this.ctx, w, now) ? 'starting' : w.state === 'ready' && w.jobs.size >= w.capacity ? 'busy' : w.state;
        const kb = w.pid > 0 && !w.closed ? await readRssKb(w.pid) : undefined;
        return { workerId: w.workerId, pid: w.pid, state, held: w.jobs.size, heldForMs: now - oldest, done: w.done, rssBytes: kb === undefined ? null : kb * 1024, startedAt: w.startedAt };
      }),
    );
  }

  reset(): Promise<void> {
    this.resetPromise ??= this.doReset().finally(() => (this.resetPromise = undefined));
    return this.resetPromise;
  }

  private async doReset(): Promise<void> {
    const { ctx } = this;
    const old = [...ctx.workers].filter((w) => w.state !== 'stopping');
    ctx.log.info({ workers: old.length }, 'resetting workers one at a time');
    for (const w of old) {
      if (ctx.stopRequested) return;
      if (w.closed || w.state === 'stopping') continue;
      // no new jobs for it; `stop` after what it holds; its replacement starts now (supervisor.replenish)
      this.supervisor.retire(w, 'reset');
      await w.whenClosed;
    }
    ctx.log.info({ workers: old.length }, 'workers reset');
  }

  releaseQueued(): number {
    const n = this.queue.size;
    this.queue.releaseAll(RELEASED);
    return n;
  }

  override on<E extends keyof PoolEvents>(event: E, listener: PoolEvents[E]): this {
    return super.on(event, listener);
  }

  stop(timeoutMs: number): Promise<void> {
    this.stopPromise ??= this.doStop(timeoutMs);
    return this.stopPromise;
  }

  private async doStop(timeoutMs: number): Promise<void> {
    const { ctx } = this;
    ctx.stopRequested = true;
    this.supervisor.stopRespawning();
    this.dispatch.stop();
    this.queue.releaseAll(RELEASED);
    try {
      for (const w of ctx.workers) {
        w.exitReason ??= 'stop';
        w.state = 'stopping';
        w.sendStop(ctx.stopFrame);
      }
      const grace = Math.min(timeoutMs, ctx.protocol.stopTimeoutMs ?? timeoutMs);
      if (!(await this.allClosed(grace))) {
        ctx.log.warn({ workers: ctx.workers.size, timeoutMs: grace }, 'workers did not exit after stop; sending SIGTERM');
        for (const w of ctx.workers) w.signal('SIGTERM');
        if (!(await this.allClosed(ctx.timings.killGraceMs))) {
          ctx.log.warn({ workers: ctx.workers.size }, 'workers did not exit after SIGTERM; sending SIGKILL');
          for (const w of ctx.workers) w.signal('SIGKILL');
          if (!(await this.allClosed(ctx.timings.killWaitMs))) ctx.log.error({ workers: ctx.workers.size }, 'workers still running after SIGKILL');
        }
      }
    } finally {
      this.supervisor.stop();
    }
  }

  /** true when every worker closed within ms */
  private async allClosed(ms: number): Promise<boolean> {
    if (this.ctx.workers.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const all = Promise.all([...this.ctx.workers].map((w) => w.whenClosed)).then(() => true);
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- worker processes ----

  private spawnWorker(): WorkerProcess {
    const { ctx, options } = this;
    const w = new WorkerProcess(this.nextWorkerId++, this.hooks);
    // one job at a time until its ready frame says it can hold more: a plain read-answer-read loop is
    // always right, and exec_ttl never runs for a job waiting behind another in a serial worker's stdin
    w.capacity = 1;
    ctx.workers.add(w);
    const env = ctx.protocol.env({ pipeline: options.pipeline, workerId: w.workerId, maxConcurrency: ctx.cfg.maxConcurrency });
    w.start(options.command, { ...this.baseEnv, ...env }, ctx.protocol, options.pipeline, options.cwd);
    return w;
  }

  private onSpawn(w: WorkerProcess): void {
    const { ctx } = this;
    ctx.log.info({ pid: w.pid, workerId: w.workerId }, 'worker started');
    // each worker leads its own process group (detached): the reaper kills the group if the daemon dies
    if (w.pid > 0) this.options.reaper?.add(w.pid);
    this.emit('worker-start', { pid: w.pid, workerId: w.workerId });
    if (ctx.stopRequested) {
      w.state = 'stopping';
      w.exitReason ??= 'stop';
      w.sendStop(ctx.stopFrame);
      return;
    }
    const handshake = ctx.protocol.handshake;
    if (handshake !== undefined) {
      w.write(handshake.hello({ pipeline: ctx.pipeline, workerId: w.workerId, pid: w.pid, daemonPid: process.pid }));
      this.supervisor.awaitHandshake(w, handshake.timeoutMs ?? ctx.cfg.allocateTimeoutMs);
      return;
    }
    this.dispatch.drain();
  }

  private onSpawnError(w: WorkerProcess, err: Error): void {
    w.exitReason = 'spawn_error';
    this.ctx.log.error({ code: 'E_WORKER_SPAWN', command: this.options.command.join(' '), workerId: w.workerId, err: errorMessage(err) }, 'cannot start worker');
  }

  private onClose(w: WorkerProcess, code: number | null, signal: string | null): void {
    const { ctx } = this;
    ctx.workers.delete(w);
    if (w.pid > 0) this.options.reaper?.remove(w.pid);
    if (w.exitReason === undefined) w.exitReason = ctx.stopRequested ? 'stop' : 'crash';
    const reason = w.exitReason;
    if (reason !== 'stop') this.restarts++;
    this.supervisor.noteDeath(w);
    if (this.supervisor.crashLoop > 0 && reason !== 'stop') {
      const how = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
      this.supervisor.lastError =
        reason === 'spawn_error'
          ? `E_WORKER_SPAWN: cannot start worker \`${this.options.command.join(' ')}\`: ${errorMessage(w.spawnError)}`
          : `E_WORKER_CRASH: worker \`${this.options.command.join(' ')}\` exited (${how}) before it answered${code === 127 ? ' (exit code 127: command not found?)' : ''}`;
    }
    if (w.jobs.size > 0) {
      const how = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
      const error = `worker ${w.pid} exited (${how}) while it held the job`;
      for (const job of [...w.jobs.values()]) this.dispatch.settle(job, { kind: 'failed', code: 'E_WORKER_CRASH', error });
    }
    if (reason !== 'spawn_error') {
      const level = reason === 'crash' ? 'warn' : 'info';
      ctx.log[level]({ pid: w.pid, workerId: w.workerId, reason, code, signal }, 'worker exited');
    }
    this.emit('worker-exit', { pid: w.pid, workerId: w.workerId, reason, code, signal });
    this.supervisor.replenish();
    this.dispatch.drain();
  }
}
