// The amqp1 DriverConnection: one rhea connection shared by every amqp1 pipeline, with jobrunner's own
// reconnect policy (rhea's `reconnect` is off: it does not recover after a broker-side session or link
// close, resets credit to 0 and forgets unsettled sends). Each connect takes the next URL of `addr`,
// detects the broker from the open frame, and tells every pipeline to re-attach on the new connection;
// nothing of an old connection is settled on a new one (each connection has its own generation).

import { EventEmitter } from 'node:events';
import rhea from 'rhea';
import type { Connection, ConnectionOptions, Container } from 'rhea';
import type { PipelineConfig } from '../../config/types.js';
import type { Amqp1ConnectionConfig, Amqp1PipelineOptions } from './options.js';
import type { BrokerPipeline, ConnectionStatus, DriverConnection } from '../driver.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage, redactUrl } from '../../shared/errors.js';
import { RECONNECT_BACKOFF, backoffDelay, type BackoffPolicy } from '../../shared/backoff.js';
import { deferred, sleep, type Deferred, untilAborted } from '../../shared/deferred.js';
import { detectBroker, type BrokerInfo } from './broker.js';
import { ManagementLink, describeAmqpError } from './management.js';
import type { ConnectionHost, LiveConnection } from './live.js';
import { Amqp1Pipeline } from './pipeline.js';
import { tlsClientOptions, tlsFailure, tlsServername, warnInsecure, type TlsClientOptions } from '../tls.js';
import { CREDIT_OVERRUN, connectionLeftovers, openRheaGate, remoteOpenProperties } from './rhea-gate.js';

/** the tls section's files as Node's TLS options take them */
type TlsFiles = Pick<TlsClientOptions, 'ca' | 'cert' | 'key'>;

export interface Amqp1ConnectionOptions {
  config: Amqp1ConnectionConfig;
  logger: Logger;
  /** reconnect backoff (tests shorten it) */
  backoff?: BackoffPolicy;
  /** how long connecting to one URL may take, ms */
  connectTimeoutMs?: number;
}

export type { LiveConnection } from './live.js';

export function createAmqp1Connection(options: Amqp1ConnectionOptions): DriverConnection {
  return new Amqp1Connection(options);
}

export class Amqp1Connection extends EventEmitter implements DriverConnection, ConnectionHost {
  readonly driver = 'amqp1' as const;
  private readonly logger: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly pipelines = new Set<Amqp1Pipeline>();
  private readonly container: Container;
  private live: LiveConnection | undefined;
  private current: Connection | undefined;
  private generation = 0;
  private urlIndex = 0;
  private statusValue: ConnectionStatus = { connected: false, since: Date.now(), reconnects: 0 };
  private started: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private waiters: Deferred<LiveConnection>[] = [];
  /** the tls section's files, read at the first amqps:// connect (an unreadable one fails that attempt, which is retried) */
  private tlsFiles: TlsFiles | undefined;

  constructor(private readonly options: Amqp1ConnectionOptions) {
    super();
    this.logger = options.logger.child({ driver: 'amqp1' });
    this.backoff = options.backoff ?? RECONNECT_BACKOFF;
    this.container = rhea.create_container({ id: options.config.containerId });
    // rhea re-emits unhandled endpoint errors on the container: never let one throw
    this.container.on('error', (err: unknown) => this.logger.debug({ err: errorMessage(err) }, 'amqp1 container error'));
  }

  start(signal?: AbortSignal): Promise<void> {
    if (this.started === undefined) {
      const first = deferred<void>();
      this.started = first.promise;
      try {
        // rhea's internals are checked and its patches installed here, never at import
        openRheaGate();
      } catch (err) {
        first.reject(err);
        return this.started;
      }
      void this.run(first);
    }
    return untilAborted(this.started, signal);
  }

  pipeline(config: PipelineConfig): BrokerPipeline {
    if (config.driver !== 'amqp1') throw new JobrunnerError('E_INTERNAL', `pipeline ${config.name} is not an amqp1 pipeline`);
    const p = new Amqp1Pipeline(config as PipelineConfig<Amqp1PipelineOptions>, this, this.logger.child({ pipeline: config.name }));
    this.pipelines.add(p);
    if (this.live !== undefined) p.onConnected(this.live);
    return p;
  }

  /** @internal pipelines drop themselves when closed */
  forget(p: object): void {
    this.pipelines.delete(p as Amqp1Pipeline);
  }

  status(): ConnectionStatus {
    return { ...this.statusValue };
  }

  /** The live connection, else undefined. */
  liveConnection(): LiveConnection | undefined {
    return this.live;
  }

  /** Waits for a live connection, at most `timeoutMs`; rejects with E_BROKER_CLOSED. */
  waitConnected(timeoutMs: number): Promise<LiveConnection> {
    if (this.live !== undefined) return Promise.resolve(this.live);
    if (this.stopping !== undefined) return Promise.reject(new JobrunnerError('E_BROKER_CLOSED', 'the amqp1 connection is stopped'));
    const d = deferred<LiveConnection>();
    this.waiters.push(d);
    const timer = setTimeout(() => {
      this.waiters = this.waiters.filter((w) => w !== d);
      d.reject(new JobrunnerError('E_BROKER_CLOSED', `not connected to the amqp1 broker within ${timeoutMs} ms${this.statusValue.error ? `: ${this.statusValue.error}` : ''}`));
    }, timeoutMs);
    return d.promise.finally(() => clearTimeout(timer));
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopController.abort();
    for (const w of this.waiters) w.reject(new JobrunnerError('E_BROKER_CLOSED', 'the amqp1 connection is stopping'));
    this.waiters = [];
    for (const p of [...this.pipelines]) {
      try {
        await p.close();
      } catch (err) {
        this.logger.warn({ err: errorMessage(err), pipeline: p.name }, 'amqp1 pipeline close failed');
      }
    }
    const conn = this.current;
    this.current = undefined;
    if (conn !== undefined) await closeConnection(conn);
    this.setLive(undefined, undefined);
  }

  /** Connect, and reconnect whenever the connection is lost, until stop(). */
  private async run(first: Deferred<void>): Promise<void> {
    const signal = this.stopController.signal;
    warnInsecure(this.logger, 'amqp1', this.options.config.tls, this.options.config.urls);
    let failures = 0;
    let everConnected = false;
    while (!signal.aborted) {
      const url = this.options.config.urls[this.urlIndex % this.options.config.urls.length] as string;
      this.urlIndex += 1;
      let conn: Connection;
      try {
        conn = await this.connectOnce(url);
      } catch (err) {
        failures += 1;
        const msg = `amqp1 cannot connect to ${redactUrl(url)}: ${errorMessage(err)}`;
        this.statusValue = { ...this.statusValue, error: msg, url: redactUrl(url) };
        this.emit('status', this.status());
        if (failures === 1) this.logger.error({ code: 'E_BROKER_CONNECT', url: redactUrl(url) }, msg);
        else this.logger.debug({ code: 'E_BROKER_CONNECT', url: redactUrl(url), failures }, msg);
        if (signal.aborted) break;
        await sleep(backoffDelay(this.backoff, failures), signal);
        continue;
      }
      if (signal.aborted) {
        await closeConnection(conn);
        break;
      }
      failures = 0;
      const lost = deferred<string>();
      conn.on('disconnected', (ctx) => lost.resolve(`disconnected: ${errorMessage(ctx.error ?? 'socket closed')}`));
      conn.on('connection_close', (ctx) => lost.resolve(`closed by the broker: ${describeAmqpError(ctx.connection.error)}`));
      this.current = conn;
      const host = hostOf(url);
      const broker = detectBroker(remoteOpenProperties(conn), host);
      if (everConnected) this.statusValue.reconnects += 1;
      everConnected = true;
      this.logger.info({ url: redactUrl(url), broker: broker.kind, product: broker.product, version: broker.version }, `amqp1 connected to ${broker.product ?? 'an AMQP 1.0 broker'} ${broker.version ?? ''} (${broker.kind})`.replace(/ +\(/, ' ('));
      this.setLive(conn, { url, host, broker });
      first.resolve();
      const why = await Promise.race([lost.promise, new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve('stopping'), { once: true }))]);
      if (signal.aborted) break;
      this.current = undefined;
      this.statusValue = { ...this.statusValue, error: `amqp1 connection lost: ${why}` };
      this.logger.warn({ code: 'E_BROKER_CLOSED', url: redactUrl(url) }, `amqp1 connection lost: ${why}; reconnecting`);
      this.setLive(undefined, undefined);
      try {
        conn.close();
      } catch {
        // gone already
      }
      conn.removeAllListeners();
      this.quiet(conn);
      await sleep(backoffDelay(this.backoff, 1), signal);
    }
    first.resolve();
  }

  /** a connection given up: what rhea would print on the console (a late close, read errors) goes to the debug log */
  private quiet(conn: Connection): void {
    const debug = (what: string) => (e: unknown) => this.logger.debug({ err: errorMessage((e as { error?: unknown } | null)?.error ?? e) }, `amqp1 ${what} on a closed connection`);
    conn.on('error', debug('error'));
    conn.on('protocol_error', debug('protocol error'));
    conn.on('disconnected', () => undefined);
    conn.on(CREDIT_OVERRUN, () => undefined);
  }

  private setLive(conn: Connection | undefined, info: { url: string; host: string; broker: BrokerInfo } | undefined): void {
    const was = this.live;
    if (conn === undefined || info === undefined) {
      if (was === undefined) return;
      this.live = undefined;
      this.statusValue = { ...this.statusValue, connected: false, since: Date.now() };
      for (const p of this.pipelines) p.onDisconnected(was.generation);
    } else {
      this.generation += 1;
      let mgmt: ManagementLink | undefined;
      const live: LiveConnection = {
        connection: conn,
        generation: this.generation,
        broker: info.broker,
        host: info.host,
        rabbitManagement: () => (mgmt ??= new ManagementLink(conn, '/management', 'rabbitmq')),
      };
      this.live = live;
      const { error: _gone, ...rest } = this.statusValue;
      this.statusValue = { ...rest, connected: true, since: Date.now(), url: redactUrl(info.url) };
      for (const w of this.waiters) w.resolve(live);
      this.waiters = [];
      for (const p of this.pipelines) p.onConnected(live);
    }
    this.emit('status', this.status());
  }

  private async connectOnce(url: string): Promise<Connection> {
    if (url.startsWith('amqps:')) this.tlsFiles ??= await tlsClientOptions(this.options.config.tls, 'amqp1');
    const opts = connectionOptions(url, this.options.config, this.tlsFiles);
    const conn = this.container.connect(opts);
    const d = deferred<Connection>();
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    const timer = setTimeout(() => d.reject(new Error(`no open frame within ${timeoutMs} ms`)), timeoutMs);
    const fail = (why: string): void => d.reject(new Error(why));
    conn.once('connection_open', () => d.resolve(conn));
    conn.on('connection_error', (ctx) => fail(describeAmqpError(ctx.connection.error)));
    const host = hostOf(url);
    conn.on('disconnected', (ctx) => fail(tlsFailure(ctx.error, host) ?? errorMessage(ctx.error ?? 'socket closed')));
    conn.on('error', (ctx: { error?: unknown }) => fail(tlsFailure(ctx?.error, host) ?? errorMessage(ctx?.error ?? 'connection error')));
    conn.on('protocol_error', (err: unknown) => fail(tlsFailure(err, host) ?? errorMessage(err)));
    return d.promise.then(
      (c) => {
        clearTimeout(timer);
        c.removeAllListeners('connection_error');
        c.removeAllListeners('disconnected');
        c.removeAllListeners('error');
        c.removeAllListeners('protocol_error');
        c.on('error', (ctx: { error?: unknown }) => this.logger.debug({ err: errorMessage(ctx?.error) }, 'amqp1 connection error'));
        c.on('connection_error', (ctx) => this.logger.warn({ code: 'E_BROKER_CLOSED' }, `amqp1 connection error: ${describeAmqpError(ctx.connection.error)}`));
        c.on('protocol_error', (err: unknown) => this.logger.warn({ code: 'E_BROKER_CLOSED' }, `amqp1 protocol error: ${errorMessage(err)}`));
        let overruns = 0;
        c.on(CREDIT_OVERRUN, (receiver: { name?: string }) => {
          overruns++;
          // the first of a connection at warn, then every 1000th: a broker that overruns does it often
          const level = overruns === 1 || overruns % 1000 === 0 ? 'warn' : 'debug';
          this.logger[level]({ link: receiver.name, overruns }, 'amqp1: the broker sent a delivery beyond the link credit (the delivery is kept)');
        });
        return c;
      },
      async (err: unknown) => {
        clearTimeout(timer);
        conn.removeAllListeners();
        this.quiet(conn);
        try {
          conn.close();
        } catch {
          // never opened
        }
        throw err;
      },
    );
  }
}

/** rhea's connect options from one URL: SASL PLAIN from the URL's user and password (URL-decoded). */
export function connectionOptions(
  url: string,
  config: Pick<Amqp1ConnectionConfig, 'containerId' | 'idleTimeoutMs' | 'tls'>,
  files: TlsFiles = {},
): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new JobrunnerError('E_BROKER_CONNECT', `not a URL: ${redactUrl(url)}`);
  }
  const secure = u.protocol === 'amqps:';
  if (!secure && u.protocol !== 'amqp:') throw new JobrunnerError('E_BROKER_CONNECT', `amqp1 URLs are amqp:// or amqps://, not ${u.protocol}//`);
  const host = hostOf(url);
  const base: Record<string, unknown> = {
    host,
    port: u.port === '' ? (secure ? 5671 : 5672) : Number(u.port),
    container_id: config.containerId,
    idle_time_out: config.idleTimeoutMs,
    reconnect: false,
    // rhea enables TCP_NODELAY only in connection.attach_receiver; our links attach through sessions, so
    // without this Nagle holds small flow/disposition frames for a delayed ACK (~40 ms a round: issue 7)
    tcp_no_delay: true,
  };
  if (u.username !== '') base['username'] = decodeURIComponent(u.username);
  if (u.password !== '') base['password'] = decodeURIComponent(u.password);
  const vhost = decodeURIComponent(u.pathname.replace(/^\//, ''));
  // RabbitMQ picks the vhost from the open frame's hostname ("vhost:NAME"); others want the host
  if (vhost !== '') base['hostname'] = `vhost:${vhost}`;
  if (secure) {
    base['transport'] = 'tls';
    // no SNI for an IP address (RFC 6066): '' keeps rhea from filling in the host, and Node still
    // checks the certificate against the host
    base['servername'] = tlsServername(host) ?? '';
    base['rejectUnauthorized'] = !(config.tls?.insecureSkipVerify ?? false);
    if (files.ca !== undefined) base['ca'] = files.ca;
    if (files.cert !== undefined) base['cert'] = files.cert;
    if (files.key !== undefined) base['key'] = files.key;
  }
  return base as unknown as ConnectionOptions;
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}

function closeConnection(conn: Connection): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, 2000);
    function done(): void {
      clearTimeout(timer);
      conn.removeAllListeners();
      conn.on('error', () => undefined);
      conn.on('protocol_error', () => undefined);
      conn.on('disconnected', () => undefined);
      const c = connectionLeftovers(conn);
      try {
        // the socket may linger if the broker never answers the close
        c.socket?.destroy();
      } catch {
        // nothing to destroy
      }
      // rhea clears its idle timers only on its own disconnect path: never leave them running
      // (after the current input is processed: rhea re-arms heartbeat_in at the end of input())
      const clear = (): void => {
        for (const t of c.timers()) if (t !== undefined) clearTimeout(t);
      };
      clear();
      setImmediate(() => {
        clear();
        resolve();
      });
    }
    conn.once('connection_close', done);
    conn.once('disconnected', done);
    try {
      if (conn.is_open()) conn.close();
      else done();
    } catch {
      done();
    }
  });
}
