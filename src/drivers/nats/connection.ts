// The nats DriverConnection: one NATS connection shared by every nats pipeline. The first connect is
// retried by us with backoff (so start() can report the first failure and keep trying); once connected,
// the client's own reconnect logic takes over (every URL of `addr`, forever). Each disconnect starts a
// new generation: deliveries of an older generation are stale (their results are dropped and JetStream
// redelivers the messages after ack_wait), as on every driver. TLS: the `tls` keys as on the AMQP
// connections (src/drivers/tls.ts); a failed first connect names its TLS cause.

import { EventEmitter } from 'node:events';
import { connect, type NatsConnection as NatsClient, type TlsOptions } from '@nats-io/transport-node';
import type { ConnectionOptions as NodeTlsOptions } from 'node:tls';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { PipelineConfig } from '../../config/types.js';
import type { NatsConnectionConfig, NatsPipelineOptions } from './options.js';
import type { BrokerPipeline, ConnectionStatus, DriverConnection } from '../driver.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage, redactUrl } from '../../shared/errors.js';
import { RECONNECT_BACKOFF, backoffDelay, type BackoffPolicy } from '../../shared/backoff.js';
import { deferred, sleep, type Deferred, untilAborted } from '../../shared/deferred.js';
import { NatsPipeline } from './pipeline.js';
import { DelayMovers } from './delay.js';
import type { LiveNats, NatsLink } from './live.js';
import { tlsClientOptions, tlsFailure, warnInsecure } from '../tls.js';
import { probeTls } from './tls-probe.js';

export interface NatsConnectionOptions {
  config: NatsConnectionConfig;
  logger: Logger;
  /** first-connect backoff (tests shorten it) */
  backoff?: BackoffPolicy;
  /** the client's wait between reconnect attempts, ms */
  reconnectWaitMs?: number;
}


export function createNatsConnection(options: NatsConnectionOptions): DriverConnection {
  return new NatsConnection(options);
}

export class NatsConnection extends EventEmitter implements DriverConnection, NatsLink {
  readonly driver = 'nats' as const;
  readonly logger: Logger;
  readonly movers: DelayMovers;
  private readonly backoff: BackoffPolicy;
  private readonly pipelines = new Set<NatsPipeline>();
  private live: LiveNats | undefined;
  private client: NatsClient | undefined;
  private generation = 0;
  private statusValue: ConnectionStatus = { connected: false, since: Date.now(), reconnects: 0 };
  private started: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private waiters: Deferred<LiveNats>[] = [];
  /** resolves the current live connection's `lost` */
  private lostNow: (() => void) | undefined;

  constructor(private readonly options: NatsConnectionOptions) {
    super();
    this.logger = options.logger.child({ driver: 'nats' });
    this.backoff = options.backoff ?? RECONNECT_BACKOFF;
    this.movers = new DelayMovers(this);
  }

  start(signal?: AbortSignal): Promise<void> {
    if (this.started === undefined) {
      const first = deferred<void>();
      this.started = first.promise;
      void this.run(first);
    }
    return untilAborted(this.started, signal);
  }

  pipeline(config: PipelineConfig): BrokerPipeline {
    if (config.driver !== 'nats') throw new JobrunnerError('E_INTERNAL', `pipeline ${config.name} is not a nats pipeline`);
    const p = new NatsPipeline(config as PipelineConfig<NatsPipelineOptions>, this, this.logger.child({ pipeline: config.name }));
    this.pipelines.add(p);
    return p;
  }

  /** @internal pipelines drop themselves when closed */
  forget(p: { readonly name: string }): void {
    this.pipelines.delete(p as NatsPipeline);
  }

  status(): ConnectionStatus {
    return { ...this.statusValue };
  }

  /** The live connection, else undefined. */
  liveConnection(): LiveNats | undefined {
    return this.live;
  }

  /** The current generation (changes on every disconnect). */
  currentGeneration(): number {
    return this.generation;
  }

  isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /** Waits for a live connection, at most `timeoutMs`; rejects with E_BROKER_CLOSED. */
  waitConnected(timeoutMs: number, signal?: AbortSignal): Promise<LiveNats> {
    if (this.live !== undefined) return Promise.resolve(this.live);
    if (this.stopping !== undefined) return Promise.reject(new JobrunnerError('E_BROKER_CLOSED', 'the nats connection is stopped'));
    const d = deferred<LiveNats>();
    this.waiters.push(d);
    const onAbort = (): void => d.reject(new JobrunnerError('E_BROKER_CLOSED', 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      d.reject(new JobrunnerError('E_BROKER_CLOSED', `not connected to the NATS server within ${timeoutMs} ms${this.statusValue.error ? `: ${this.statusValue.error}` : ''}`));
    }, timeoutMs);
    return d.promise.finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      this.waiters = this.waiters.filter((w) => w !== d);
    });
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopController.abort();
    for (const w of this.waiters) w.reject(new JobrunnerError('E_BROKER_CLOSED', 'the nats connection is stopping'));
    this.waiters = [];
    // in parallel: each waits for its open fetch to end (at most its expiry)
    await Promise.all(
      [...this.pipelines].map((p) =>
        p.close().catch((err: unknown) => this.logger.warn({ err: errorMessage(err), pipeline: p.name }, 'nats pipeline close failed')),
      ),
    );
    await this.movers.stopAll();
    const nc = this.client;
    this.client = undefined;
    if (nc !== undefined) {
      try {
        // acks are fire-and-forget on the wire: make sure the last ones left before closing
        if (!nc.isClosed()) await Promise.race([nc.flush(), sleep(2000)]);
      } catch {
        // closing anyway
      }
      await nc.close().catch(() => undefined);
    }
    this.setLive(undefined);
  }

  /** First connect with our backoff; after that the client reconnects by itself until stop(). */
  private async run(first: Deferred<void>): Promise<void> {
    const signal = this.stopController.signal;
    const urls = this.options.config.urls;
    // the client takes TLS whenever the server asks for it, whatever the URL says
    warnInsecure(this.logger, 'nats', this.options.config.tls, urls, () => true);
    let failures = 0;
    while (!signal.aborted) {
      let nc: NatsClient;
      let tls: TlsOptions | undefined;
      try {
        tls = await natsTls(this.options.config);
        nc = await connect({
          servers: urls,
          ...(tls === undefined ? {} : { tls }),
          name: 'jobrunner',
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.options.reconnectWaitMs ?? 1000,
          waitOnFirstConnect: false,
          timeout: 10_000,
          // a half-open socket is noticed within a minute
          pingInterval: 20_000,
          maxPingOut: 3,
        });
      } catch (err) {
        failures += 1;
        const msg = `nats cannot connect to ${urls.map(redactUrl).join(', ')}: ${await connectReason(err, this.options.config, tls)}`;
        this.statusValue = { ...this.statusValue, error: msg, url: redactUrl(urls[0] ?? '') };
        if (failures === 1) this.logger.error({ code: 'E_BROKER_CONNECT' }, msg);
        else this.logger.debug({ code: 'E_BROKER_CONNECT', failures }, msg);
        if (signal.aborted) break;
        await sleep(backoffDelay(this.backoff, failures), signal);
        continue;
      }
      if (signal.aborted) {
        await nc.close().catch(() => undefined);
        break;
      }
      let jsm: JetStreamManager;
      try {
        jsm = await jetstreamManager(nc, { timeout: 10_000 });
      } catch (err) {
        failures += 1;
        const msg = `nats server ${redactUrl(nc.getServer())} has no JetStream for this account (start nats-server with -js): ${errorMessage(err)}`;
        this.statusValue = { ...this.statusValue, error: msg };
        if (failures === 1) this.logger.error({ code: 'E_BROKER_CONNECT' }, msg);
        await nc.close().catch(() => undefined);
        if (signal.aborted) break;
        await sleep(backoffDelay(this.backoff, failures), signal);
        continue;
      }
      failures = 0;
      this.client = nc;
      const js = jetstream(nc, { timeout: 10_000 });
      const serverVersion = nc.info?.version ?? '0.0.0';
      this.logger.info({ url: redactUrl(nc.getServer()), version: serverVersion }, `nats connected to nats-server ${serverVersion}`);
      this.setLive({ nc, js, jsm, generation: this.generation, serverVersion, lost: new Promise<void>(() => undefined) });
      first.resolve();
      void this.watch(nc, js, jsm);
      const closed = await Promise.race([nc.closed(), new Promise<'stop'>((r) => signal.addEventListener('abort', () => r('stop'), { once: true }))]);
      if (signal.aborted) break;
      // the client gave up (it never does with maxReconnectAttempts -1, but a server can close us for good)
      this.client = undefined;
      this.generation += 1;
      this.setLive(undefined, closed instanceof Error ? errorMessage(closed) : 'connection closed');
      this.logger.warn({ err: closed instanceof Error ? errorMessage(closed) : undefined }, 'nats connection closed: connecting again');
      this.statusValue.reconnects += 1;
    }
  }

  /** Follows the client's status events: disconnect -> not connected (new generation), reconnect -> connected. */
  private async watch(nc: NatsClient, js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    for await (const s of nc.status()) {
      if (this.client !== nc) return;
      switch (s.type) {
        case 'disconnect':
          this.generation += 1;
          this.logger.warn({ server: redactUrl(String(s.server ?? '')) }, 'nats disconnected: reconnecting');
          this.setLive(undefined, 'disconnected');
          break;
        case 'reconnect': {
          this.statusValue.reconnects += 1;
          const serverVersion = nc.info?.version ?? '0.0.0';
          this.logger.info({ server: redactUrl(String(s.server ?? '')), version: serverVersion }, 'nats reconnected');
          this.setLive({ nc, js, jsm, generation: this.generation, serverVersion, lost: new Promise<void>(() => undefined) });
          break;
        }
        case 'error':
          this.logger.warn({ err: errorMessage(s.error) }, 'nats server error');
          break;
        default:
          break;
      }
    }
  }

  private setLive(live: LiveNats | undefined, error?: string): void {
    const was = this.live !== undefined;
    this.lostNow?.();
    this.lostNow = undefined;
    if (live !== undefined) {
      const lost = deferred<void>();
      live.lost = lost.promise;
      this.lostNow = () => lost.resolve();
    }
    this.live = live;
    if (live !== undefined) {
      const { error: _drop, ...rest } = this.statusValue;
      this.statusValue = { ...rest, connected: true, since: was ? this.statusValue.since : Date.now(), url: redactUrl(live.nc.getServer()) };
      for (const w of this.waiters) w.resolve(live);
      this.waiters = [];
      for (const p of this.pipelines) p.onConnected(live);
      this.movers.onConnected(live);
    } else {
      this.statusValue = { ...this.statusValue, connected: false, since: was ? Date.now() : this.statusValue.since, ...(error === undefined ? {} : { error }) };
      for (const p of this.pipelines) p.onDisconnected();
      this.movers.onDisconnected();
    }
    if (was !== (live !== undefined)) this.emit('status', this.status());
  }
}

/**
 * The client's TLS options: the `tls` files and rejectUnauthorized (the node transport hands this object
 * on to tls.connect), or {} for a tls:// URL without settings: either one makes TLS required (a server
 * without it is refused); none: the client still takes TLS when the server requires it.
 */
async function natsTls(config: NatsConnectionConfig): Promise<TlsOptions | undefined> {
  if (config.tls === undefined) return config.urls.some((u) => /^tls:\/\//i.test(u)) ? {} : undefined;
  const o = await tlsClientOptions(config.tls, 'nats');
  const tls: TlsOptions & Pick<NodeTlsOptions, 'rejectUnauthorized'> = { rejectUnauthorized: o.rejectUnauthorized };
  if (o.ca !== undefined) tls.ca = o.ca.map((b) => b.toString('utf8')).join('\n');
  if (o.cert !== undefined) tls.cert = o.cert.toString('utf8');
  if (o.key !== undefined) tls.key = o.key.toString('utf8');
  return tls;
}

/**
 * A TLS failure named, a server without TLS named, else the client's message. A first connect over TLS
 * that failed is probed (./tls-probe.ts), on each URL of `addr` in turn until one names a TLS error: a
 * refused client certificate ends the handshake only after the client's side of it, so the client
 * reports just "timeout", and with several URLs the error it reports may come from another server
 * (a refused connection) than the one that refused the certificate.
 */
async function connectReason(err: unknown, config: NatsConnectionConfig, tls: TlsOptions | undefined): Promise<string> {
  let { host } = hostPort(config.urls[0] ?? '');
  let cause = err;
  let probedUrl: string | undefined;
  const probeable = tls !== undefined && (config.urls.length > 1 || (err as { name?: unknown } | null)?.name === 'TimeoutError');
  for (const url of probeable ? config.urls : []) {
    const at = hostPort(url);
    const probed = await probeTls(at.host, at.port, tls as NodeTlsOptions);
    if (probed !== undefined) {
      cause = probed;
      host = at.host;
      probedUrl = url;
      break;
    }
  }
  const named = tlsFailure(cause, host, { clientCert: config.tls?.cert !== undefined });
  // with several servers, say which one
  if (named !== undefined) return probedUrl !== undefined && config.urls.length > 1 ? `${named} (at ${redactUrl(probedUrl)})` : named;
  const msg = errorMessage(err);
  if (/does not support 'tls'/.test(msg)) return 'TLS: the server does not offer TLS (a tls:// URL or nats.tls settings for a server without TLS?)';
  return msg;
}

/** the host and port of a nats URL, also of a bare host[:port] */
function hostPort(url: string): { host: string; port: number } {
  try {
    const u = new URL(/^[a-z]+:\/\//i.test(url) ? url : `nats://${url}`);
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 4222) };
  } catch {
    return { host: '', port: 4222 };
  }
}
