// The composition root: builds connections, pipelines, pools and the HTTP server from a Config, starts
// them, and stops them in reverse (SPEC §8). start() and stop() are idempotent; no signal handlers here
// (src/cli/ owns the process).

import type { Config, DriverName, PipelineConfig } from '../config/types.js';
import type { ConnectionStatus, DriverConnection, OutgoingJob } from '../drivers/driver.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Pipeline, type PipelineOptions } from '../pipelines/pipeline.js';
import { createPool, Reaper } from '../pool/index.js';
import { protocolNamed } from '../protocol/registry.js';
import { deferred } from '../shared/deferred.js';
import { SHUTDOWN_ESCALATION_MS, SHUTDOWN_PHASES } from '../shared/shutdown.js';
import { JobrunnerError, errorMessage, redactUrl } from '../shared/errors.js';
import { startHttpServer, type Control, type HealthReport, type HttpServer, type PushRequest } from '../http/server.js';
import { createConnection } from './connections.js';
import { pushedJob } from './push.js';
import type { Tracing } from '../observability/tracing.js';
import { declaredPipeline } from '../config/load.js';
import type { RpcServer } from '../rpc/server.js';
import type { RpcControl } from '../rpc/jobs.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** tests pass their own registry-free metrics; defaults to a new Metrics with process defaults */
  metrics?: Metrics;
  /** OpenTelemetry, when enabled (src/observability/tracing.ts) */
  tracing?: Tracing;
}

export interface PipelineInfo {
  pipeline: string;
  driver: DriverName;
  queue: string;
  consuming: boolean;
  ready: number | null;
  active: number;
  delayed: number | null;
  reserved: number;
  workers: number;
  priority: number;
  error: string | null;
}

/** one row of GET /workers */
export interface WorkerRow {
  pipeline: string;
  worker: number;
  pid: number;
  state: string;
  /** jobs it holds now, and for how long it has held the oldest (ms) */
  held: number;
  held_for_ms: number;
  /** jobs it answered */
  done: number;
  /** resident memory, bytes (null when unknown) */
  rss: number | null;
  /** ISO time it was spawned, and its age in ms */
  started: string;
  age_ms: number;
  /** the pipeline's worker restarts so far (crashes, timeouts, max_jobs, resets) */
  restarts: number;
}

export class Daemon implements Control, RpcControl {
  readonly config: Config;
  readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly connections = new Map<DriverName, DriverConnection>();
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly abort = new AbortController();
  private readonly hurryUp = deferred<void>();
  private http: HttpServer | undefined;
  private rpc: RpcServer | undefined;
  private started: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private stopping = false;
  /** kills the workers' process groups if this process dies without stopping them (SIGKILL) */
  private reaper: Reaper | undefined;
  /** pipelines whose first declare/consume has finished (health and readiness wait for it) */
  private readonly settledStart = new Set<string>();

  constructor(private readonly options: DaemonOptions) {
    this.config = options.config;
    this.logger = options.logger;
    this.metrics = options.metrics ?? new Metrics();
  }

  /** the HTTP server's bound address (host:port), when it runs */
  get httpAddress(): string | undefined {
    return this.http?.address;
  }

  /** the RPC server's address (tcp://host:port or unix:///path), when it runs */
  get rpcAddress(): string | undefined {
    return this.rpc?.address;
  }

  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    const { config, logger } = this;
    try {
      const reaper = new Reaper();
      await reaper.start();
      this.reaper = reaper;
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, 'cannot start the worker reaper (/bin/sh): workers may outlive a daemon that is killed');
    }
    for (const p of config.pipelines) await this.addPipeline(p, config);
    this.registerGauges();
    if (config.http.address !== '' && config.http.address !== 'off') {
      this.http = await startHttpServer({ address: config.http.address, token: config.http.token, control: this, logger });
      logger.info({ address: this.http.address }, 'http server listening');
    }
    if (config.rpc) {
      // before any pool starts: workers get its address as RR_RPC
      // loaded only when used: protobufjs and the .proto stay out of a daemon without an rpc section
      const { startRpcServer } = await import('../rpc/server.js');
      this.rpc = await startRpcServer({ listen: config.rpc.listen, allowUnauthenticated: config.rpc.allowUnauthenticated, control: this, logger });
      logger.info({ address: this.rpc.address }, 'rpc server listening');
    }
    logger.info({ pipelines: [...this.pipelines.keys()], file: config.file }, 'jobrunner started');
    // each connection comes up on its own: a broker that is down does not hold up the others
    for (const conn of this.connections.values()) {
      void this.bringUp(conn);
    }
  }

  /** a pipeline object on its driver's connection (made on first use); `config` holds the connection's settings */
  private async addPipeline(p: PipelineConfig, config: Config): Promise<{ pipeline: Pipeline; conn: DriverConnection; isNew: boolean }> {
    let conn = this.connections.get(p.driver);
    const isNew = !conn;
    if (!conn) {
      conn = await createConnection(p.driver, config, this.logger);
      this.watchConnection(conn);
      this.connections.set(p.driver, conn);
    }
    const pipeline = new Pipeline({
      config: p,
      broker: conn.pipeline(p),
      createPool: () => this.makePool(p),
      publishTo: (name, job) => this.publishTo(name, job),
      logger: this.logger,
      metrics: this.metrics,
      ...(this.options.tracing ? { traceJob: this.traceJob(this.options.tracing) } : {}),
    });
    this.pipelines.set(p.name, pipeline);
    return { pipeline, conn, isNew };
  }

  /** waits for the connection, then declares its pipelines and consumes those in jobs.consume */
  private async bringUp(conn: DriverConnection): Promise<void> {
    try {
      await conn.start(this.abort.signal);
    } catch (err) {
      if (!this.stopping) this.logger.error({ driver: conn.driver, code: 'E_BROKER_CONNECT', err: errorMessage(err) }, 'broker connection failed');
      return;
    }
    if (this.stopping) return;
    const mine = [...this.pipelines.values()].filter((p) => p.config.driver === conn.driver);
    await Promise.all(
      mine.map(async (p) => {
        try {
          await p.declare();
          if (p.config.consume && !this.stopping) await p.resume();
        } catch (err) {
          const code = err instanceof JobrunnerError ? err.code : 'E_BROKER_DECLARE';
          this.logger.error({ pipeline: p.name, code, err: errorMessage(err) }, `pipeline ${p.name} cannot start`);
        } finally {
          this.settledStart.add(p.name);
        }
      }),
    );
  }

  private watchConnection(conn: DriverConnection): void {
    let wasConnected = false;
    conn.on('status', () => {
      const s = conn.status();
      this.metrics.brokerConnected.set({ connection: conn.driver }, s.connected ? 1 : 0);
      if (s.connected && !wasConnected && s.reconnects > 0) this.metrics.brokerReconnects.inc({ connection: conn.driver });
      if (s.connected !== wasConnected) {
        this.logger.info({ driver: conn.driver, connected: s.connected, url: s.url ? redactUrl(s.url) : undefined, error: s.error }, s.connected ? 'broker connected' : 'broker disconnected');
      }
      wasConnected = s.connected;
    });
  }

  /** bound, so the pipeline can call it as a plain function */
  private traceJob(tracing: Tracing): NonNullable<PipelineOptions['traceJob']> {
    return (delivery, config) => tracing.traceJob(delivery, config);
  }

  private makePool(p: PipelineConfig): ReturnType<typeof createPool> {
    const protocol = protocolNamed(p.pool.protocol);
    // the schema's enum lists the registry's names (a test keeps them equal): this is a bug, not a user mistake
    if (protocol === undefined) throw new JobrunnerError('E_INTERNAL', `pipeline ${p.name}: no worker protocol named ${p.pool.protocol}`);
    // RoadRunner gives workers the RPC address, so PHP workers push follow-ups with the same library
    const env = this.rpc ? { ...p.env, RR_RPC: this.rpc.address } : p.env;
    const pool = createPool({ pipeline: p.name, command: p.command, env, cwd: this.config.workdir, pool: p.pool, protocol, logger: this.logger, ...(this.reaper ? { reaper: this.reaper } : {}) });
    pool.on('worker-exit', (info) => {
      if (info.reason !== 'stop') this.metrics.workerRestarts.inc({ pipeline: p.name, reason: info.reason });
    });
    return pool;
  }

  private registerGauges(): void {
    this.metrics.onCollect(async () => {
      for (const p of this.pipelines.values()) {
        const stats = p.poolStats();
        for (const state of ['starting', 'ready', 'busy', 'stopping'] as const) {
          this.metrics.workers.set({ pipeline: p.name, state }, stats?.workers[state] ?? 0);
        }
      }
      for (const conn of this.connections.values()) this.metrics.brokerConnected.set({ connection: conn.driver }, conn.status().connected ? 1 : 0);
      await Promise.all(
        [...this.pipelines.values()].map(async (p) => {
          if (!this.connections.get(p.config.driver)?.status().connected) return;
          const n = await p.broker.readyCount().catch(() => undefined);
          if (n !== undefined) this.metrics.queueReady.set({ pipeline: p.name }, n);
        }),
      );
    });
  }

  private pipeline(name: string): Pipeline {
    const p = this.pipelines.get(name);
    if (!p) throw new JobrunnerError('E_PIPELINE_UNKNOWN', `no pipeline named ${JSON.stringify(name)} (known: ${[...this.pipelines.keys()].join(', ')})`);
    return p;
  }

  /** publishes to any pipeline by name (push, follow-ups, dead letters) and counts it */
  async publishTo(name: string, job: OutgoingJob): Promise<void> {
    const p = this.pipeline(name);
    const tracing = this.options.tracing;
    try {
      // with tracing: a PRODUCER span around the confirmed publish, its context in job.traceparent
      if (tracing?.publish) await tracing.publish(job, p.config, (traced) => p.broker.publish(traced));
      else await p.broker.publish(tracing?.producer(job, p.config) ?? job);
      this.metrics.publishedTotal.inc({ pipeline: name, outcome: 'ok' });
    } catch (err) {
      this.metrics.publishedTotal.inc({ pipeline: name, outcome: err instanceof JobrunnerError && err.code === 'E_UNPUBLISHABLE' ? 'unpublishable' : 'error' });
      throw err;
    }
  }

  // ---- Control (the HTTP API and tests) ----

  async push(name: string, req: PushRequest): Promise<string> {
    if (this.stopping) throw new JobrunnerError('E_SHUTDOWN', 'the daemon is shutting down');
    const job = pushedJob(this.pipeline(name).config, req);
    await this.publishTo(name, job);
    return job.id;
  }

  pipelineNames(): string[] {
    return [...this.pipelines.keys()];
  }

  /**
   * jobs.Declare over RPC: a pipeline from RoadRunner's string map, checked like the file's pipelines,
   * declared and consumed now. Resolves once it consumes (or fails with the reason).
   */
  async declarePipeline(settings: Record<string, string>): Promise<void> {
    if (this.stopping) throw new JobrunnerError('E_SHUTDOWN', 'the daemon is shutting down');
    const name = settings.name ?? '';
    if (this.pipelines.has(name)) throw new JobrunnerError('E_CONFIG_SCHEMA', `a pipeline named ${JSON.stringify(name)} exists already`);
    const { pipeline: p, config } = declaredPipeline(this.config, settings);
    const { pipeline, conn, isNew } = await this.addPipeline(p, config);
    this.logger.info({ pipeline: p.name, driver: p.driver }, 'pipeline declared over rpc');
    try {
      if (isNew) await conn.start(this.abort.signal);
      await pipeline.declare();
      await pipeline.resume();
    } finally {
      this.settledStart.add(p.name);
    }
  }

  /** jobs.Destroy over RPC: stops the pipeline as shutdown would (held jobs go back) and forgets it */
  async destroyPipeline(name: string): Promise<void> {
    const p = this.pipeline(name);
    this.pipelines.delete(name);
    this.settledStart.delete(name);
    await p.stop(p.config.pool.destroyTimeoutMs, this.hurryUp.promise);
    await p.broker.close();
    this.logger.info({ pipeline: name }, 'pipeline destroyed over rpc');
  }

  async pause(name: string): Promise<void> {
    await this.pipeline(name).pause();
  }

  async resume(name: string): Promise<void> {
    if (this.stopping) throw new JobrunnerError('E_SHUTDOWN', 'the daemon is shutting down');
    const p = this.pipeline(name);
    if (p.config.command.length === 0) {
      throw new JobrunnerError('E_WORKER_SPAWN', `pipeline ${name} has no worker command (set server.command, jobs.pool.command or its own \`command\`), so it cannot be consumed`);
    }
    await p.resume();
  }

  /** GET /workers, `jobrunner workers`: every worker process, oldest first per pipeline */
  async listWorkers(pipeline?: string): Promise<WorkerRow[]> {
    const pipelines = pipeline === undefined ? [...this.pipelines.values()] : [this.pipeline(pipeline)];
    const now = Date.now();
    const rows = await Promise.all(
      pipelines.map(async (p) => {
        const pool = p.workerPool;
        if (!pool) return [];
        const workers = await pool.workers();
        return workers.map((w): WorkerRow => ({
          pipeline: p.name,
          worker: w.workerId,
          pid: w.pid,
          state: w.state,
          held: w.held,
          held_for_ms: w.heldForMs,
          done: w.done,
          rss: w.rssBytes,
          started: new Date(w.startedAt).toISOString(),
          age_ms: now - w.startedAt,
          restarts: pool.restarts,
        }));
      }),
    );
    return rows.flat();
  }

  /**
   * POST /pipelines/NAME/reset, SIGHUP: the pipeline's workers restart one at a time, each after the jobs
   * it holds are done (RoadRunner's `rr reset`). Resolves once begun; the pool logs when it is over.
   */
  async reset(name: string): Promise<void> {
    if (this.stopping) throw new JobrunnerError('E_SHUTDOWN', 'the daemon is shutting down');
    const pool = this.pipeline(name).workerPool;
    if (!pool) return; // never consumed: no workers to restart
    pool.reset().catch((err: unknown) => this.logger.warn({ pipeline: name, err: errorMessage(err) }, 'worker reset failed'));
  }

  /** SIGHUP: every pipeline's workers, gracefully */
  resetAll(): void {
    for (const name of this.pipelines.keys()) void this.reset(name).catch(() => undefined);
  }

  async listPipelines(): Promise<PipelineInfo[]> {
    return Promise.all(
      [...this.pipelines.values()].map(async (p) => {
        const s = p.state();
        const conn = this.connections.get(p.config.driver);
        const connected = conn?.status().connected ?? false;
        // a blocked connection (a resource alarm) answers no queue query: the count would hang the request
        const ready = connected && conn?.status().blocked === undefined ? await withinMs(p.broker.readyCount(), 2000).catch(() => undefined) : undefined;
        return {
          pipeline: p.name,
          driver: p.config.driver,
          queue: s.queue,
          consuming: s.consuming,
          ready: ready ?? null,
          active: s.active,
          delayed: p.broker.delayedCount?.() ?? null,
          reserved: p.broker.inFlightCount?.() ?? s.active,
          workers: s.workers,
          priority: pipelinePriority(p.config),
          error: s.error ?? s.workerError ?? (conn && !connected ? conn.status().error ?? 'broker not connected' : null) ?? blockedReason(conn?.status()),
        };
      }),
    );
  }

  health(): HealthReport {
    const now = Date.now();
    const pipelines: HealthReport['pipelines'] = {};
    let ok = true;
    for (const p of this.pipelines.values()) {
      if (!p.config.consume) continue;
      const conn = this.connections.get(p.config.driver);
      const status = conn?.status();
      const redial = p.config.redialTimeoutMs;
      // a lost connection (or a first one not made yet) stays healthy for redial_timeout while it retries
      const connectedEnough = !!status && (status.connected || now - status.since < redial);
      const s = p.state();
      const alive = s.workers > 0 && s.crashLoop < 3;
      // a pipeline that could not declare or consume (a missing queue, a refused declare) is unhealthy
      const healthy = !this.stopping && connectedEnough && s.error === undefined && (alive || !this.settledStart.has(p.name) || !s.consuming);
      if (!healthy) ok = false;
      const error = s.error ?? s.workerError ?? status?.error;
      pipelines[p.name] = { healthy, connected: status?.connected ?? false, consuming: s.consuming, workers: s.workers, ...(error ? { error } : {}), ...(s.crashLoop > 0 ? { crash_loop: s.crashLoop } : {}) };
    }
    return { ok, pipelines };
  }

  readiness(): HealthReport {
    const pipelines: HealthReport['pipelines'] = {};
    let ok = !this.stopping;
    for (const p of this.pipelines.values()) {
      if (!p.config.consume) continue;
      const s = p.state();
      const connected = this.connections.get(p.config.driver)?.status().connected ?? false;
      const ready = !this.stopping && connected && s.consuming && s.workers > 0;
      if (!ready) ok = false;
      pipelines[p.name] = { healthy: ready, connected, consuming: s.consuming, workers: s.workers, ...(s.error ? { error: s.error } : {}) };
    }
    return { ok, pipelines };
  }

  metricsText(): Promise<string> {
    return this.metrics.text();
  }

  get metricsContentType(): string {
    return this.metrics.contentType;
  }

  // ---- shutdown ----

  /** a second signal: skip the wait for jobs in flight (they still go back to the broker) */
  hurry(): void {
    this.hurryUp.resolve();
  }

  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  /**
   * SPEC §8, bounded: every step has a deadline and one that runs over is left behind (logged), so the
   * daemon stops within the longest destroy_timeout + SHUTDOWN_ESCALATION_MS whatever workers and brokers
   * do. Nothing held is lost by cutting a step short: an unsettled message stays with the broker, which
   * hands it out again once the connection is gone (the CLI exits the process after stop()).
   */
  private async doStop(): Promise<void> {
    const t0 = performance.now();
    this.stopping = true;
    this.abort.abort();
    const { logger } = this;
    const pipelines = [...this.pipelines.values()];
    const longest = Math.max(0, ...pipelines.map((p) => p.config.pool.destroyTimeoutMs));
    const { stopGraceMs, termGraceMs, killWaitMs, closeMs } = SHUTDOWN_PHASES;
    const hardDeadline = t0 + longest + SHUTDOWN_ESCALATION_MS;
    logger.info({ destroy_timeout_ms: longest, within_ms: longest + SHUTDOWN_ESCALATION_MS }, 'stopping: no new jobs; waiting for jobs in flight');
    const step = async (what: string, fn: () => Promise<unknown>, deadline: number): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), Math.max(0, Math.min(deadline, hardDeadline) - performance.now()))));
        if ((await Promise.race([fn(), late])) === 'late') logger.warn({ step: what, waited_ms: Math.round(performance.now() - t0) }, 'shutdown step did not finish in time: going on without it');
      } catch (err) {
        logger.warn({ step: what, err: errorMessage(err) }, 'shutdown step failed');
      } finally {
        clearTimeout(timer);
      }
    };
    // each step in its own try: one failure does not skip the rest
    await step('start', async () => this.started?.catch(() => undefined), t0 + longest);
    // the jobs (destroy_timeout), then the workers: stop, SIGTERM, SIGKILL (Pipeline.stop keeps within it)
    const workersGone = t0 + longest + stopGraceMs + termGraceMs + killWaitMs;
    await step(
      'pipelines',
      () => Promise.all(pipelines.map((p) => step(p.name, () => p.stop(p.config.pool.destroyTimeoutMs, this.hurryUp.promise), workersGone))),
      workersGone,
    );
    // every worker has exited: the reaper has nothing left to kill
    await step('reaper', async () => this.reaper?.stop(), hardDeadline);
    const closed = Math.min(hardDeadline, performance.now() + closeMs);
    const brokers = async (): Promise<void> => {
      // a link close is quick unless the broker blocks the connection: then the connection's close (which
      // closes the socket when the broker does not answer) must still get its share of closeMs
      const linksBy = Math.min(closed, performance.now() + closeMs / 3);
      await step('links', () => Promise.all(pipelines.map((p) => step(p.name, () => p.broker.close(), linksBy))), linksBy);
      await step('connections', () => Promise.all([...this.connections.values()].map((c) => step(c.driver, () => c.stop(), closed))), closed);
    };
    await Promise.all([
      brokers(),
      step('rpc', async () => this.rpc?.close(), closed),
      step('http', async () => this.http?.close(), closed),
      step('tracing', async () => this.options.tracing?.shutdown(), closed),
    ]);
    logger.info({ took_ms: Math.round(performance.now() - t0) }, 'stopped');
  }
}

function pipelinePriority(p: PipelineConfig): number {
  return p.options.priority;
}

/** while the broker blocks the connection's publishers (a resource alarm): the reason, for /pipelines */
function blockedReason(status: ConnectionStatus | undefined): string | null {
  return status?.blocked !== undefined ? `the broker is blocking publishers: ${status.blocked}` : null;
}

/** p, or undefined after ms (for a figure a slow broker need not hold up) */
async function withinMs<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
