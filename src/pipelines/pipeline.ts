// One pipeline: deliveries from its driver -> the worker pool -> settlement (src/pipelines/settle.ts).
// Sees only the driver interface and the pool interface. Nothing is settled before the worker answers;
// on stop, what is still held after destroy_timeout goes back to the broker unacked.

import type { PipelineConfig } from '../config/types.js';
import type { BrokerPipeline, Delivery, OutgoingJob } from '../drivers/driver.js';
import type { FollowUp, JobOutcome, WorkerJob, WorkerPool } from '../pool/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, PipelineMetrics } from '../observability/metrics.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import { deferred, settlesWithin, type Deferred } from '../shared/deferred.js';
import { settle, type PublishTo, type SettleContext } from './settle.js';
import { followUpJob } from './outgoing.js';
import { checkCapabilities } from './capability-checks.js';
import { SHUTDOWN_PHASES } from '../shared/shutdown.js';

export type { PublishTo } from './settle.js';

export interface PipelineOptions {
  config: PipelineConfig;
  broker: BrokerPipeline;
  /** made on first consume: push-only pipelines run no workers */
  createPool: () => WorkerPool;
  publishTo: PublishTo;
  logger: Logger;
  metrics: Metrics;
  /** optional hook around each job (tracing); returns the frame's trace field and an end callback */
  traceJob?: (delivery: Delivery, pipeline: PipelineConfig) => { traceparent?: string; end(outcome: string, error?: string): void };
}

/** A delivery between arrival and settlement. */
interface Held {
  delivery: Delivery;
  /** running: on a worker; settling: its outcome is being applied; done: settled or released */
  state: 'running' | 'settling' | 'done';
  started: number;
  /** follow-up publishes, made on the first one (most jobs have none) */
  publishes: Promise<void>[] | undefined;
  /** made only when shutdown waits for this job: one promise less per message (issue 7) */
  settled: Deferred<void> | undefined;
}

/** what settle() gets for a job without follow-ups; never written to */
const NO_PUBLISHES: Promise<void>[] = [];

export interface PipelineState {
  pipeline: string;
  driver: string;
  queue: string;
  consuming: boolean;
  /** held by this daemon: delivered and not yet settled */
  active: number;
  workers: number;
  crashLoop: number;
  /** why workers keep failing to start, while they do (crashLoop > 0) */
  workerError?: string;
  error?: string;
}

export class Pipeline {
  readonly name: string;
  private pool: WorkerPool | undefined;
  private consuming = false;
  private stopping = false;
  private readonly held = new Map<Delivery, Held>();
  /** deliveries whose id is already running here: dispatched when the first one settles */
  private readonly sameId = new Map<string, Delivery[]>();
  private readonly runningIds = new Set<string>();
  private lastError: string | undefined;
  private readonly ctx: SettleContext;
  private idle: Deferred<void> | undefined;
  /** a pause with jobs held: releases what is still held after destroy_timeout */
  private pauseTimer: NodeJS.Timeout | undefined;
  /** that release, while it runs */
  private pauseRelease: Promise<void> | undefined;
  private readonly metrics: PipelineMetrics;

  constructor(private readonly opts: PipelineOptions) {
    this.name = opts.config.name;
    this.metrics = opts.metrics.forPipeline(this.name);
    this.ctx = {
      config: opts.config,
      broker: opts.broker,
      publishTo: opts.publishTo,
      logger: opts.logger,
      metrics: this.metrics,
    };
  }

  get config(): PipelineConfig {
    return this.opts.config;
  }

  get broker(): BrokerPipeline {
    return this.opts.broker;
  }

  /** declares the pipeline's topology; called for every pipeline, consumed or not (push needs it) */
  async declare(): Promise<void> {
    try {
      await this.opts.broker.declare();
      await checkCapabilities(this.opts.config, this.opts.broker, this.opts.logger);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = errorMessage(err);
      throw err;
    }
  }

  /** starts the workers (once) and consumption */
  async resume(): Promise<void> {
    if (this.stopping) throw new JobrunnerError('E_SHUTDOWN', `pipeline ${this.name} is stopping`);
    if (this.consuming) return;
    // resumed within destroy_timeout of a pause: the jobs still held just go on
    clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    if (!this.pool) {
      this.pool = this.opts.createPool();
      try {
        await this.pool.start();
      } catch (err) {
        // no worker could start (a command that does not exist): /health and status say so
        this.lastError = err instanceof JobrunnerError ? `${err.code}: ${errorMessage(err)}` : errorMessage(err);
        throw err;
      }
    }
    this.consuming = true;
    try {
      await this.opts.broker.consume((d) => this.onDelivery(d));
      this.lastError = undefined;
    } catch (err) {
      this.consuming = false;
      this.lastError = errorMessage(err);
      throw err;
    }
    this.opts.logger.info({ pipeline: this.name }, 'consuming');
  }

  /**
   * Stops consuming (SPEC §5): jobs already held may finish and settle as usual for up to
   * destroy_timeout; what is still held then goes back to the broker unacked (its worker's answer,
   * if it comes later, is ignored). Resolves once consumption stopped, not after that wait.
   */
  async pause(): Promise<void> {
    if (!this.consuming) return;
    this.consuming = false;
    await this.opts.broker.cancel();
    this.opts.logger.info({ pipeline: this.name, active: this.held.size }, 'paused');
    if (this.stopping || this.held.size === 0) return;
    const timeoutMs = this.opts.config.pool.destroyTimeoutMs;
    clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = undefined;
      // resumed meanwhile, or stopping (stop() releases what is left itself): nothing to do
      if (this.consuming || this.stopping || this.held.size === 0) return;
      this.opts.logger.info({ pipeline: this.name, active: this.held.size, timeout_ms: timeoutMs }, 'paused with jobs still running after destroy_timeout');
      // jobs no worker holds yet must not reach one later: the pool drops them, and they go back too
      this.pool?.releaseQueued();
      this.pauseRelease = this.releaseHeld().finally(() => (this.pauseRelease = undefined));
    }, timeoutMs);
  }

  isConsuming(): boolean {
    return this.consuming;
  }

  state(): PipelineState {
    const stats = this.pool?.stats();
    const workers = stats ? stats.workers.ready + stats.workers.busy + stats.workers.starting : 0;
    // consuming is asked for, but the broker delivers nothing (the queue is missing): say so, and why
    const consumeError = this.consuming ? this.opts.broker.consumeError?.() : undefined;
    const error = this.lastError ?? consumeError;
    return {
      pipeline: this.name,
      driver: this.opts.config.driver,
      queue: this.opts.broker.queue,
      consuming: this.consuming && consumeError === undefined,
      active: this.held.size,
      workers,
      crashLoop: stats?.crashLoop ?? 0,
      ...(error === undefined ? {} : { error }),
      ...(stats?.lastError === undefined ? {} : { workerError: stats.lastError }),
    };
  }

  poolStats(): ReturnType<WorkerPool['stats']> | undefined {
    return this.pool?.stats();
  }

  /** the pool's events, for logs and metrics (undefined before the first resume) */
  get workerPool(): WorkerPool | undefined {
    return this.pool;
  }

  private onDelivery(delivery: Delivery): void {
    const held: Held = { delivery, state: 'running', started: performance.now(), publishes: undefined, settled: undefined };
    this.held.set(delivery, held);
    this.metrics.inFlight.inc();
    if (delivery.invalid !== undefined) {
      // a body that cannot become a job: dead-letter it with the reason, never hand it to a worker
      this.opts.logger.warn({ pipeline: this.name, job_id: delivery.id, code: 'E_BAD_MESSAGE', reason: delivery.invalid }, 'message cannot be turned into a job: dead-lettering it');
      this.finish(held, { kind: 'nack', error: `E_BAD_MESSAGE: ${delivery.invalid}`, requeue: false });
      return;
    }
    if (this.runningIds.has(delivery.id)) {
      // replies are matched by job id: two jobs with one id must not run at once
      const waiting = this.sameId.get(delivery.id);
      if (waiting) waiting.push(delivery);
      else this.sameId.set(delivery.id, [delivery]);
      return;
    }
    this.dispatch(held);
  }

  private dispatch(held: Held): void {
    const { delivery } = held;
    const config = this.opts.config;
    this.runningIds.add(delivery.id);
    const trace = this.opts.traceJob?.(delivery, config);
    const traceparent = trace?.traceparent ?? delivery.traceparent;
    // retries and dead letters of this delivery continue the consumer span's trace
    if (trace?.traceparent !== undefined) delivery.traceparent = trace.traceparent;
    const job: WorkerJob = {
      id: delivery.id,
      job: delivery.job,
      pipeline: this.name,
      body: delivery.body,
      contentType: delivery.contentType,
      headers: delivery.headers,
      attempt: delivery.attempt,
      driver: config.driver,
      queue: delivery.queue,
      messageId: delivery.messageId ?? delivery.id,
      redelivered: delivery.redelivered,
      traceparent,
    };
    const pool = this.pool as WorkerPool;
    pool
      .run(job, {
        onPublish: (f: FollowUp) => {
          (held.publishes ??= []).push(this.publishFollowUp(delivery, f, traceparent));
        },
        onTouch: () => {
          delivery.touch?.().catch((err: unknown) => this.opts.logger.warn({ pipeline: this.name, job_id: delivery.id, err: errorMessage(err) }, 'lock renewal failed'));
        },
      })
      .then(
        (outcome) => {
          trace?.end(outcome.kind, outcome.kind === 'ack' || outcome.kind === 'released' ? undefined : outcome.error);
          this.finish(held, outcome);
        },
        (err: unknown) => {
          // the pool never rejects; if it does, treat it as a crash rather than lose the message
          trace?.end('failed', errorMessage(err));
          this.finish(held, { kind: 'failed', code: 'E_WORKER_CRASH', error: errorMessage(err) });
        },
      );
  }

  private publishFollowUp(parent: Delivery, frame: FollowUp, traceparent: string | undefined): Promise<void> {
    if (parent.live?.() === false) {
      // the parent's connection is gone, so the broker hands the parent out again and its next run
      // publishes this follow-up again: publishing it now would only make a duplicate
      const p = Promise.reject(new JobrunnerError('E_STALE_DELIVERY', `follow-up of job ${parent.id} not published: the connection the job came on is gone`));
      p.catch(() => undefined);
      return p;
    }
    const out = followUpJob(frame, traceparent);
    const p = this.opts.publishTo(frame.pipeline, out);
    // a rejected follow-up fails the parent at settlement; keep it from being an unhandled rejection meanwhile
    p.catch(() => undefined);
    this.opts.logger.debug({ pipeline: this.name, job_id: parent.id, to: frame.pipeline, follow_up: out.id }, 'follow-up publish');
    return p;
  }

  private finish(held: Held, outcome: JobOutcome): void {
    if (held.state !== 'running') return; // released by a shutdown already
    held.state = 'settling';
    const seconds = (performance.now() - held.started) / 1000;
    if (outcome.kind !== 'released') this.metrics.duration.observe(seconds);
    // settle() never rejects; then() rather than finally(), which costs two more promises per job
    const done = (): void => this.done(held);
    settle(this.ctx, held.delivery, outcome, held.publishes ?? NO_PUBLISHES).then(done, done);
  }

  private done(held: Held): void {
    if (held.state === 'done') return;
    held.state = 'done';
    const { delivery } = held;
    this.held.delete(delivery);
    this.metrics.inFlight.dec();
    held.settled?.resolve();
    if (this.runningIds.delete(delivery.id)) {
      const waiting = this.sameId.get(delivery.id);
      const next = waiting?.shift();
      if (waiting && waiting.length === 0) this.sameId.delete(delivery.id);
      if (next) {
        const nextHeld = this.held.get(next);
        // not one already being given back (a pause or stop releases the waiting ones too)
        if (nextHeld && nextHeld.state === 'running') this.dispatch(nextHeld);
      }
    }
    if (this.held.size === 0 && this.idle) this.idle.resolve();
  }

  /**
   * Shutdown (SPEC §8): stop intake, wait for held jobs up to timeoutMs (or until hurry() is called),
   * give what is left back to the broker unacked, then stop the workers. Bounded: it resolves at most
   * timeoutMs + the shutdown budget's stop, SIGTERM and SIGKILL phases after the call, whatever the
   * workers and the broker do. Workers that are idle before timeoutMs runs out get `stop` then and have
   * the rest of it to exit; a settlement the broker does not finish by then is left to the connection's
   * close (the message stays with the broker, which hands it out again).
   */
  async stop(timeoutMs: number, hurry: Promise<void>): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let hurried = false;
    void hurry.then(() => (hurried = true));
    this.stopping = true;
    clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    await this.pauseRelease;
    // a broker that blocks the connection (a resource alarm) may never answer the cancel: not past the deadline
    const paused = this.pause().catch((err: unknown) => this.opts.logger.warn({ pipeline: this.name, err: errorMessage(err) }, 'cancel failed during shutdown'));
    if (!(await settlesWithin(paused, deadline - performance.now()))) this.opts.logger.warn({ pipeline: this.name }, 'the broker did not answer the cancel in time: going on with the shutdown');
    // jobs no worker holds (queued for a slot, e.g. while the workers crash-loop, or waiting behind a job
    // with the same id) have nothing to wait for: they go back to the broker now, not after the timeout
    const queued = this.pool?.releaseQueued() ?? 0;
    const waiting = [...this.sameId.values()].flat();
    this.sameId.clear();
    const waitingHeld = waiting.map((d) => this.held.get(d)).filter((h): h is Held => h !== undefined);
    if (queued + waitingHeld.length > 0) this.opts.logger.info({ pipeline: this.name, jobs: queued + waitingHeld.length }, 'returning jobs no worker holds to the broker');
    await Promise.all(waitingHeld.map((h) => this.release(h)));
    if (this.held.size > 0) {
      this.opts.logger.info({ pipeline: this.name, active: this.held.size, timeout_ms: timeoutMs }, 'waiting for jobs in flight');
      this.idle = deferred();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle.promise, hurry, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - performance.now()))))]);
      clearTimeout(timer);
    }
    // what is left of destroy_timeout (a second signal cuts it), at least the budget's stop phase
    const graceMs = Math.max(SHUTDOWN_PHASES.stopGraceMs, hurried ? 0 : deadline - performance.now());
    // released jobs are marked at once (a worker's later answer is ignored); the workers get `stop` meanwhile
    await Promise.all([this.releaseHeld(graceMs), this.pool?.stop(graceMs)]);
  }

  /** gives one running job back to the broker unacked */
  private release(held: Held): Promise<void> {
    if (held.state !== 'running') return Promise.resolve();
    held.state = 'settling';
    return held.delivery
      .reject(true, this.stopping ? 'shutdown' : 'paused')
      .then(
        () => this.metrics.count('released'),
        (err: unknown) => this.opts.logger.warn({ pipeline: this.name, job_id: held.delivery.id, err: errorMessage(err) }, 'could not release job: the broker redelivers it'),
      )
      .finally(() => this.done(held));
  }

  /**
   * Returns every job still running to the broker; waits for those already settling, at most waitMs
   * (a settlement can wait on a publish the broker never confirms: shutdown must not wait with it).
   */
  private async releaseHeld(waitMs = Infinity): Promise<void> {
    const releases: Promise<void>[] = [];
    const settling: Promise<void>[] = [];
    for (const held of this.held.values()) {
      if (held.state === 'running') {
        releases.push(this.release(held));
      } else {
        settling.push((held.settled ??= deferred()).promise);
      }
    }
    const n = releases.length + settling.length;
    if (n > 0) this.opts.logger.info({ pipeline: this.name, jobs: n }, 'returning unfinished jobs to the broker');
    const finished = await settlesWithin(Promise.all([...releases, ...settling]), waitMs);
    if (!finished) {
      this.opts.logger.warn(
        { pipeline: this.name, jobs: this.held.size, ids: [...this.held.keys()].slice(0, 10).map((d) => d.id), waited_ms: Math.round(waitMs) },
        'shutdown: results still being settled with the broker; not waiting longer (what is not settled when the connection closes stays with the broker, which hands it out again)',
      );
    }
  }
}
