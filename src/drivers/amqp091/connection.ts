// The amqp091 DriverConnection: one amqplib connection shared by every amqp091 pipeline, one confirm
// channel for publishing, and our own reconnect loop (URLs tried in turn, capped exponential backoff with
// jitter). A connection is a Session; when it dies, everything tied to it (consumer channels, their
// unsettled deliveries, pending publishes) dies with it, and the pipelines rebuild on the next Session.
// amqplib's recovery wrapper is not used: it would hide which channel a delivery belongs to.

import { EventEmitter } from 'node:events';
import amqp, { type ChannelModel } from 'amqplib';
import type { PipelineConfig } from '../../config/types.js';
import type { Amqp091ConnectionConfig, Amqp091PipelineOptions } from './options.js';
import type { Logger } from '../../observability/logger.js';
import { RECONNECT_BACKOFF, backoffDelay } from '../../shared/backoff.js';
import { settlesWithin, sleep } from '../../shared/deferred.js';
import { JobrunnerError, errorMessage, redactUrl } from '../../shared/errors.js';
import type { BrokerPipeline, ConnectionStatus, DriverConnection } from '../driver.js';
import { Amqp091Pipeline } from './pipeline.js';
import { Session, type SessionHost } from './session.js';
import { tlsClientOptions, tlsFailure, tlsServername, warnInsecure, type TlsClientOptions } from '../tls.js';

/** RoadRunner's (amqp091-go's) default heartbeat, used when the URL sets none. */
const DEFAULT_HEARTBEAT_S = 10;
/** How long a publish waits for a connection that is being re-established. */
const PUBLISH_WAIT_MS = 5_000;
/** How long stop() waits for the broker's close-ok before it closes the socket (within the shutdown budget's closeMs). */
const CLOSE_WAIT_MS = 2_000;

/** amqplib's socket under a ChannelModel (ChannelModel.connection.stream), if it is there */
function socketOf(model: ChannelModel): { destroy(): void } | undefined {
  const stream = (model as unknown as { connection?: { stream?: { destroy?: unknown } } }).connection?.stream;
  return typeof stream?.destroy === 'function' ? (stream as { destroy(): void }) : undefined;
}

export interface Amqp091ConnectionOptions {
  config: Amqp091ConnectionConfig;
  logger: Logger;
}

export function createAmqp091Connection(options: Amqp091ConnectionOptions): DriverConnection {
  return new Amqp091Connection(options);
}

export class Amqp091Connection extends EventEmitter implements DriverConnection, SessionHost {
  readonly driver = 'amqp091' as const;
  private readonly config: Amqp091ConnectionConfig;
  readonly logger: Logger;
  private session: Session | undefined;
  private sessions = 0;
  private urlIndex = 0;
  private started: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private readonly pipelines = new Set<Amqp091Pipeline>();
  private connectedWaiters = new Set<() => void>();
  private st: ConnectionStatus = { connected: false, since: Date.now(), reconnects: 0 };
  private tlsOptions: TlsClientOptions | undefined;

  constructor(options: Amqp091ConnectionOptions) {
    super();
    this.config = options.config;
    this.logger = options.logger;
  }

  start(signal?: AbortSignal): Promise<void> {
    if (this.started === undefined) {
      warnInsecure(this.logger, 'amqp', this.config.tls, this.config.urls);
      const first = new Promise<void>((resolve) => this.connectedWaiters.add(resolve));
      void this.connectLoop();
      this.started = first;
    }
    if (signal === undefined) return this.started;
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => resolve(), { once: true });
      this.started?.then(resolve, reject);
    });
  }

  pipeline(config: PipelineConfig): BrokerPipeline {
    if (config.driver !== 'amqp091') throw new JobrunnerError('E_INTERNAL', `pipeline ${config.name} uses driver ${config.driver}, not amqp091`);
    const p = new Amqp091Pipeline(this, config as PipelineConfig<Amqp091PipelineOptions>);
    this.pipelines.add(p);
    return p;
  }

  /** @internal a closed pipeline stops being restored after reconnects */
  forget(p: Amqp091Pipeline): void {
    this.pipelines.delete(p);
  }

  status(): ConnectionStatus {
    return { ...this.st };
  }

  /** @internal the live session, if any */
  current(): Session | undefined {
    return this.session !== undefined && !this.session.closed ? this.session : undefined;
  }

  /** @internal the live session, waiting a little for a reconnect in progress */
  async waitSession(ms = PUBLISH_WAIT_MS): Promise<Session | undefined> {
    const s = this.current();
    if (s !== undefined || this.stopController.signal.aborted || this.started === undefined) return s;
    let done!: () => void;
    const connected = new Promise<void>((resolve) => (done = resolve));
    this.connectedWaiters.add(done);
    const timer = new AbortController();
    try {
      await Promise.race([connected, sleep(ms, AbortSignal.any([timer.signal, this.stopController.signal]))]);
    } finally {
      timer.abort();
      this.connectedWaiters.delete(done);
    }
    return this.current();
  }

  stop(): Promise<void> {
    if (this.stopping === undefined) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopController.abort();
    for (const w of this.connectedWaiters) w();
    this.connectedWaiters.clear();
    const s = this.session;
    this.session = undefined;
    if (s !== undefined) {
      for (const p of this.pipelines) p.sessionLost(s);
      s.closed = true;
      s.failPending('the connection is stopping');
      const closing = s.model.close().catch((err: unknown) => this.logger.debug(`amqp091 connection close: ${errorMessage(err)}`));
      // a broker that blocks the connection (a resource alarm) reads nothing more from it, so it never
      // answers the close: the socket goes then, and with it what this connection held back to the queue
      if (!(await settlesWithin(closing, CLOSE_WAIT_MS))) {
        this.logger.warn({ code: 'E_BROKER_CLOSED' }, `amqp091: the broker did not answer the connection close within ${CLOSE_WAIT_MS} ms; closing the socket`);
        socketOf(s.model)?.destroy();
      }
    }
    this.setStatus({ connected: false });
  }

  private async connectLoop(): Promise<void> {
    const signal = this.stopController.signal;
    let failures = 0;
    while (!signal.aborted) {
      const url = this.config.urls[this.urlIndex % this.config.urls.length] as string;
      try {
        const model = await amqp.connect(this.withHeartbeat(url), await this.socketOptions(url));
        if (signal.aborted) {
          await model.close().catch(() => undefined);
          return;
        }
        await this.attach(model, url);
        return;
      } catch (err) {
        failures++;
        const reason = connectReason(err, url);
        const line = `E_BROKER_CONNECT cannot connect to ${redactUrl(url)}: ${reason}`;
        if (failures === 1) this.logger.error({ code: 'E_BROKER_CONNECT' }, line);
        else this.logger.debug({ code: 'E_BROKER_CONNECT', attempt: failures }, line);
        this.setStatus({ connected: false, error: `cannot connect to ${redactUrl(url)}: ${reason}` });
        this.urlIndex++;
        await sleep(backoffDelay(RECONNECT_BACKOFF, failures), signal);
      }
    }
  }

  private async attach(model: ChannelModel, url: string): Promise<void> {
    const s = new Session(++this.sessions, model, this.logger);
    let lost = false;
    const onLost = (err?: unknown): void => {
      if (lost) return;
      lost = true;
      s.closed = true;
      if (this.session === s) this.session = undefined;
      for (const p of this.pipelines) p.sessionLost(s);
      s.failPending('the broker connection closed before the broker confirmed');
      if (this.stopController.signal.aborted) return;
      const why = err === undefined ? 'closed' : errorMessage(err);
      this.logger.warn({ code: 'E_BROKER_CLOSED' }, `amqp091 connection to ${redactUrl(url)} lost: ${why}; reconnecting`);
      this.setStatus({ connected: false, error: `connection lost: ${why}` });
      this.urlIndex++; // a cluster: try the next node first
      void this.connectLoop();
    };
    model.on('error', (err: unknown) => this.logger.debug(`amqp091 connection error: ${errorMessage(err)}`));
    model.on('close', onLost);
    model.on('blocked', (reason: string) => {
      this.logger.warn({ code: 'E_PUBLISH' }, `amqp091: the broker is blocking publishers: ${reason}`);
      this.setStatus({ blocked: reason });
    });
    model.on('unblocked', () => {
      this.logger.info('amqp091: the broker no longer blocks publishers');
      this.setStatus({ blocked: null });
    });
    this.session = s;
    // rebuild every pipeline's topology and consumers before saying we are connected
    for (const p of this.pipelines) {
      if (s.closed) return;
      await p.sessionReady(s);
    }
    if (s.closed) return;
    const reconnect = this.sessions > 1;
    this.logger.info({ reconnect }, `amqp091 connected to ${redactUrl(url)}`);
    this.setStatus({ connected: true, url: redactUrl(url), reconnects: this.st.reconnects + (reconnect ? 1 : 0) });
    const waiters = [...this.connectedWaiters];
    this.connectedWaiters.clear();
    for (const w of waiters) w();
  }

  /** `blocked: null` ends a block; a lost connection ends it too */
  private setStatus(change: Partial<Omit<ConnectionStatus, 'blocked'>> & { blocked?: string | null }): void {
    const prev = this.st;
    const next: ConnectionStatus = { connected: change.connected ?? prev.connected, since: prev.since, reconnects: change.reconnects ?? prev.reconnects };
    const error = change.connected === true ? undefined : (change.error ?? prev.error);
    if (error !== undefined) next.error = error;
    const url = change.url ?? prev.url;
    if (url !== undefined) next.url = url;
    const blocked = change.blocked !== undefined ? (change.blocked ?? undefined) : change.connected === false ? undefined : prev.blocked;
    if (blocked !== undefined) next.blocked = blocked;
    const changed = next.connected !== prev.connected || next.error !== prev.error || next.blocked !== prev.blocked;
    if (next.connected !== prev.connected) next.since = Date.now();
    this.st = next;
    if (changed) this.emit('status', this.status());
  }

  private withHeartbeat(url: string): string {
    try {
      const u = new URL(url);
      if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(DEFAULT_HEARTBEAT_S));
      return u.toString();
    } catch {
      return url;
    }
  }

  private async socketOptions(url: string): Promise<Record<string, unknown>> {
    const base: Record<string, unknown> = { timeout: 10_000, clientProperties: { connection_name: 'jobrunner' } };
    if (!url.startsWith('amqps:')) return base;
    this.tlsOptions ??= await tlsClientOptions(this.config.tls, 'amqp');
    const servername = tlsServername(hostOf(url));
    return { ...base, ...this.tlsOptions, ...(servername ? { servername } : {}) };
  }
}

/** A TLS failure named, ECONNREFUSED, ENOTFOUND..., else the (redacted) message. */
function connectReason(err: unknown, url: string): string {
  const tls = tlsFailure(err, hostOf(url));
  if (tls !== undefined) return tls;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return errorMessage(err);
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}
