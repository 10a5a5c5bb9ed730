// Supervision: exec_ttl (one sweeping timer for every job of the pool), max_worker_memory (RSS polled
// from /proc), the start handshake's deadline, protocol errors, killing and retiring workers, and
// keeping num_workers alive with crash-loop backoff (a worker that dies at start is respawned after
// 100 ms, doubling up to 30 s; one that dies on a job is replaced at once).

import { readFile, readdir } from 'node:fs/promises';
import { backoffDelay, type BackoffPolicy } from '../shared/backoff.js';
import { RELEASED, type PoolContext } from './context.js';
import type { FailureCode, JobOutcome, WorkerExitReason } from './types.js';
import type { PendingJob, WorkerProcess } from './worker.js';

/** What supervision asks of the rest of the pool. */
export interface SuperviseHooks {
  /** resolves a job once and frees its slot (dispatch) */
  settle(job: PendingJob, outcome: JobOutcome): void;
  /** moves queued jobs to free slots (dispatch) */
  drain(): void;
  /** starts one more worker process (lifecycle) */
  spawn(): void;
}

export class Supervisor {
  /** consecutive failed starts (0 when healthy) */
  crashLoop = 0;
  /** why the last quick death happened, kept while crashLoop > 0 (shown by /health and status) */
  lastError: string | undefined;
  private readonly restartPolicy: BackoffPolicy;
  private respawnTimer: NodeJS.Timeout | undefined;
  private ttlTimer: NodeJS.Timeout | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  private silentTimer: NodeJS.Timeout | undefined;
  private memoryPolling = false;

  constructor(
    private readonly ctx: PoolContext,
    private readonly hooks: SuperviseHooks,
  ) {
    const t = ctx.timings;
    this.restartPolicy = { initialMs: t.restartInitialMs, maxMs: t.restartMaxMs, multiplier: 2, jitter: 0.1 };
  }

  /** arms the exec_ttl and memory timers (when those limits are set) */
  start(): void {
    const { cfg } = this.ctx;
    if (cfg.execTtlMs > 0) {
      const tick = Math.min(1000, Math.max(10, Math.floor(cfg.execTtlMs / 10)));
      this.ttlTimer = setInterval(() => this.sweepDeadlines(), tick);
    }
    if (cfg.maxWorkerMemoryMb > 0) this.memoryTimer = setInterval(() => void this.pollMemory(), this.ctx.timings.memoryPollMs);
    const silent = this.ctx.timings.silentJobWarnMs;
    this.silentTimer = setInterval(() => this.sweepSilent(), Math.max(20, Math.min(5000, Math.floor(silent / 4))));
    this.silentTimer.unref();
  }

  /** one warning per worker holding a job that got no frame at all for silentJobWarnMs */
  private sweepSilent(): void {
    const now = Date.now();
    const limit = this.ctx.timings.silentJobWarnMs;
    for (const w of this.ctx.workers) {
      if (w.warnedSilent || w.killed) continue;
      for (const job of w.jobs.values()) {
        const at = job.assignedAt;
        if (at === undefined || now - at < limit || w.lastFrameAt >= at) continue;
        w.warnedSilent = true;
        this.ctx.log.warn(
          { pid: w.pid, job_id: job.id, held_ms: now - at },
          `job held ${Math.round((now - at) / 1000)} s with no answer from its worker: does the worker flush stdout after each frame? (said once per worker)`,
        );
        break;
      }
    }
  }

  /** no more respawns from now on (stop() has begun) */
  stopRespawning(): void {
    clearTimeout(this.respawnTimer);
    this.respawnTimer = undefined;
  }

  /** clears every timer (the pool's workers are gone) */
  stop(): void {
    this.stopRespawning();
    clearInterval(this.ttlTimer);
    clearInterval(this.memoryTimer);
    clearInterval(this.silentTimer);
    this.ttlTimer = this.memoryTimer = this.silentTimer = undefined;
  }

  /** A protocol with a handshake: a worker that does not answer it within its limit has failed to start. */
  awaitHandshake(w: WorkerProcess, limitMs: number): void {
    if (limitMs <= 0) return;
    const name = this.ctx.protocol.name;
    w.startTimer = setTimeout(() => {
      w.startTimer = undefined;
      if (w.announced || w.killed || w.closed) return;
      this.ctx.log.warn({ pid: w.pid, timeoutMs: limitMs, protocol: name }, 'worker did not answer the start handshake; killing it');
      this.kill(w, 'start_timeout', 'E_WORKER_CRASH', `worker ${w.pid} did not answer the ${name} handshake within ${limitMs} ms`);
    }, limitMs);
  }

  /** the worker said ready: its start is over */
  ready(w: WorkerProcess): void {
    clearTimeout(w.startTimer);
    w.startTimer = undefined;
  }

  /** the worker broke the protocol: the job it named fails E_WORKER_PROTOCOL (else every job it held), it is replaced */
  protocolError(w: WorkerProcess, error: string, id?: string): void {
    if (w.killed) return;
    this.ctx.log.warn({ pid: w.pid, error }, 'worker broke the protocol; replacing it');
    const culprit = id === undefined ? undefined : w.jobs.get(id);
    const message = `worker ${w.pid} broke the protocol: ${error}`;
    if (culprit === undefined) this.kill(w, 'protocol', 'E_WORKER_PROTOCOL', message);
    else this.kill(w, 'protocol', 'E_WORKER_CRASH', `worker ${w.pid} was replaced after a protocol error on another job`, [culprit], 'E_WORKER_PROTOCOL', message);
  }

  /**
   * SIGKILLs a worker and fails its jobs at once: `culprits` with culpritCode, the rest with code.
   * A replacement is started (with backoff when this was a quick death).
   */
  kill(w: WorkerProcess, reason: WorkerExitReason, code: FailureCode, error: string, culprits: PendingJob[] = [], culpritCode: FailureCode = code, culpritError: string = error): void {
    if (w.killed) return;
    w.killed = true;
    w.exitReason = reason;
    w.state = 'stopping';
    w.signal('SIGKILL');
    this.noteDeath(w);
    for (const job of culprits) this.hooks.settle(job, { kind: 'failed', code: culpritCode, error: culpritError });
    // when the culprit is known, the other jobs it held did nothing wrong: they go back to the broker
    // without spending an attempt; when it is not (memory), every job it held failed with it
    const bystander: JobOutcome = culprits.length > 0 ? RELEASED : { kind: 'failed', code, error };
    if (culprits.length > 0 && w.jobs.size > 0) this.ctx.log.info({ pid: w.pid, jobs: w.jobs.size, reason }, 'returning the other jobs of a killed worker to the broker');
    for (const job of [...w.jobs.values()]) this.hooks.settle(job, bystander);
    this.replenish();
    this.hooks.drain();
  }

  /** max_jobs reached, or the worker asked for it: no new jobs, `stop` sent after what is queued, a replacement started now. */
  retire(w: WorkerProcess, reason: 'max_jobs' | 'restart' | 'reset'): void {
    w.state = 'stopping';
    w.exitReason = reason;
    w.sendStop(this.ctx.stopFrame);
    if (w.jobs.size === 0) this.armRetireTimer(w);
    this.replenish();
  }

  /** a stopping worker holds no job any more */
  idle(w: WorkerProcess): void {
    if (w.exitReason === 'max_jobs' || w.exitReason === 'restart' || w.exitReason === 'reset') this.armRetireTimer(w);
  }

  /** the worker answered a job for the first time: it started well, so the crash loop is over */
  answered(w: WorkerProcess): void {
    w.answered = true;
    if (this.crashLoop === 0) return;
    this.crashLoop = 0;
    this.lastError = undefined;
    if (this.respawnTimer !== undefined) {
      clearTimeout(this.respawnTimer);
      this.respawnTimer = undefined;
      this.replenish();
    }
  }

  /** counts a quick, unplanned death (no answer, short life) towards the crash loop */
  noteDeath(w: WorkerProcess): void {
    if (w.deathNoted) return;
    w.deathNoted = true;
    if (w.exitReason === 'stop' || w.exitReason === 'max_jobs' || w.exitReason === 'restart' || w.exitReason === 'reset') return;
    // a crash at start: no answer, and either very early or before any job reached it. A worker that
    // lived through probation and died on a job was killed by that job: replace it at once, or one
    // poison message would hold the whole pool in restart backoff
    const quick = !w.answered && w.dispatched === 0 && Date.now() - w.startedAt < this.ctx.timings.healthyAfterMs;
    this.crashLoop = quick ? this.crashLoop + 1 : 0;
    if (!quick) this.lastError = undefined;
  }

  /** keeps num_workers live workers; after quick deaths, one spawn per backoff delay */
  replenish(): void {
    if (this.ctx.stopRequested || this.respawnTimer !== undefined) return;
    const target = Math.max(1, this.ctx.cfg.numWorkers);
    while (this.activeCount() < target) {
      if (this.crashLoop > 0) {
        const delay = backoffDelay(this.restartPolicy, this.crashLoop);
        this.respawnTimer = setTimeout(() => {
          this.respawnTimer = undefined;
          if (this.ctx.stopRequested) return;
          if (this.activeCount() < target) this.hooks.spawn();
          this.replenish();
        }, delay);
        return;
      }
      this.hooks.spawn();
    }
  }

  private activeCount(): number {
    let n = 0;
    for (const w of this.ctx.workers) if (w.state !== 'stopping') n++;
    return n;
  }

  /** a retired worker with no jobs left gets destroy_timeout to exit before it is killed */
  private armRetireTimer(w: WorkerProcess): void {
    if (w.retireTimer !== undefined || w.closed) return;
    w.retireTimer = setTimeout(() => {
      w.retireTimer = undefined;
      if (!w.closed) {
        this.ctx.log.warn({ pid: w.pid }, 'retired worker did not exit after stop; killing it');
        w.signal('SIGKILL');
      }
    }, Math.max(1000, this.ctx.cfg.destroyTimeoutMs));
  }

  /** exec_ttl: one sweeping timer for every job of the pool. */
  private sweepDeadlines(): void {
    const now = Date.now();
    for (const w of this.ctx.workers) {
      if (w.killed) continue;
      let late: PendingJob[] | undefined;
      for (const job of w.jobs.values()) if (job.deadline > 0 && job.deadline <= now) (late ??= []).push(job);
      if (late === undefined) continue;
      const ttl = this.ctx.cfg.execTtlMs;
      this.ctx.log.warn({ pid: w.pid, jobs: late.map((j) => j.id), execTtlMs: ttl }, 'job ran past exec_ttl; killing its worker');
      this.kill(w, 'timeout', 'E_WORKER_CRASH', `worker ${w.pid} was killed: another job it held ran past exec_ttl`, late, 'E_WORKER_TIMEOUT', `job ran past exec_ttl (${ttl} ms); worker ${w.pid} killed`);
    }
  }

  private async pollMemory(): Promise<void> {
    if (this.memoryPolling) return;
    this.memoryPolling = true;
    const limitMb = this.ctx.cfg.maxWorkerMemoryMb;
    try {
      await Promise.all(
        [...this.ctx.workers].map(async (w) => {
          if (w.pid === 0 || w.killed || w.closed) return;
          // the whole tree: `sh -c "python3 w.py"` is a shell whose child does the work
          const rssKb = await readTreeRssKb(w.pid);
          if (rssKb === undefined || rssKb <= limitMb * 1024 || w.killed || w.closed) return;
          const mb = Math.round(rssKb / 1024);
          this.ctx.log.warn({ pid: w.pid, rssMb: mb, limitMb }, 'worker over max_worker_memory; killing it');
          this.kill(w, 'memory', 'E_WORKER_MEMORY', `worker ${w.pid} used ${mb} MB, over max_worker_memory (${limitMb} MB); killed`);
        }),
      );
    } finally {
      this.memoryPolling = false;
    }
  }
}

/** VmRSS of a process in kB (Linux /proc); undefined when it cannot be read */
export async function readRssKb(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** processes below pid (Linux /proc/PID/task/TID/children); [] when it cannot be read */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')));
    return lists.flatMap((l) => l.split(' ').filter((x) => x !== '').map(Number));
  } catch {
    return [];
  }
}

/**
 * VmRSS of a process and every process below it, in kB (at most 256 processes): max_worker_memory holds
 * for a worker started through a shell as for one started directly. Undefined when pid cannot be read.
 */
export async function readTreeRssKb(pid: number): Promise<number | undefined> {
  const own = await readRssKb(pid);
  if (own === undefined) return undefined;
  let total = own;
  const seen = new Set([pid]);
  let level = await childrenOf(pid);
  while (level.length > 0 && seen.size < 256) {
    const next: number[] = [];
    for (const c of level) {
      if (seen.has(c) || seen.size >= 256) continue;
      seen.add(c);
      total += (await readRssKb(c)) ?? 0;
      next.push(...(await childrenOf(c)));
    }
    level = next;
  }
  return total;
}
