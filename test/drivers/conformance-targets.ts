// The conformance targets of the broker drivers (amqp091, amqp1, nats): how each one is connected and set
// up for the shared suite (test/drivers/conformance.ts). One factory per driver, used both by its
// *-conformance test on the shared brokers (plain connections, proxied for the cut case) and by
// tls-conformance.test.ts on private TLS servers: `url` is what the driver connects to (amqps://, or a
// nats:// server that requires TLS) with `tls`, and `adminUrl` is where the test looks from the side and
// cleans up (a plain AMQP 0-9-1 URL on the same RabbitMQ node; for nats the same server, with `adminTls`).

import type { TlsConfig } from '../../src/config/types.js';
import { createAmqp091Connection } from '../../src/drivers/amqp091/connection.js';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import { createNatsConnection } from '../../src/drivers/nats/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { RabbitSetup, amqp1Pipeline, withSetup, type Amqp1PipelineConfig } from '../helpers/amqp1-rabbit.js';
import { NatsAdmin, natsPipeline, type NatsClientTls } from '../helpers/nats.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { amqpPipeline, RawBroker, TEST_DELAYS_MS } from './amqp091-helpers.js';
import { queueOf, type ConformanceFactory, type ConformanceTarget } from './conformance.js';

export interface TargetOptions {
  /** what the driver connects to */
  url: string;
  /** where the test sets up, counts and cleans up from the side (default: url) */
  adminUrl?: string;
  /** the driver's connection tls settings */
  tls?: TlsConfig;
}

const BACKOFF = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };

async function proxyFor(url: string, defaultPort: number): Promise<TcpProxy> {
  const u = new URL(url);
  return startTcpProxy(u.hostname, Number(u.port || defaultPort));
}

/** amqp091: a direct exchange per pipeline (publishing goes through a binding), dead letters by queue arguments. */
export function amqp091Target(o: TargetOptions): ConformanceFactory {
  const adminUrl = o.adminUrl ?? o.url;
  return async ({ proxied }): Promise<ConformanceTarget> => {
    const proxy = proxied ? await proxyFor(o.url, 5672) : undefined;
    const conn = createAmqp091Connection({ config: { urls: [proxy ? proxy.url(o.url) : o.url], ...(o.tls ? { tls: o.tls } : {}) }, logger: silentLogger() });
    const queues = new Set<string>();
    const exchanges = new Set<string>();
    return {
      conn,
      ...(proxy === undefined ? {} : { proxy }),
      pipeline(opts) {
        const exchange = `${opts.name}.x`;
        queues.add(opts.name);
        exchanges.add(exchange);
        const queueHeaders: Record<string, unknown> = {};
        if (opts.deadLetterTo !== undefined) {
          queueHeaders['x-dead-letter-exchange'] = '';
          queueHeaders['x-dead-letter-routing-key'] = queueOf(opts.deadLetterTo);
        }
        return amqpPipeline(opts.name, { exchange, routingKey: opts.name, prefetch: opts.prefetch ?? 10, queueHeaders });
      },
      async cleanup() {
        await proxy?.close();
        const raw = await RawBroker.open(adminUrl);
        try {
          await raw.deleteQueues([...queues].flatMap((q) => [q, ...TEST_DELAYS_MS.map((ms) => `jobrunner.delay.${q}.${ms}`)]));
          await raw.deleteExchanges(exchanges);
        } finally {
          await raw.close();
        }
      },
    };
  };
}

/**
 * amqp1 on RabbitMQ: queues (and the dead-letter arguments) are created over AMQP 0-9-1 on adminUrl in
 * test setup, because AMQP 1.0 cannot declare on 3.x; on 3.x the delay queue is created the same way.
 */
export function amqp1Target(o: TargetOptions): ConformanceFactory {
  const adminUrl = o.adminUrl ?? o.url;
  const port = Number(new URL(o.url).port || 5672);
  return async ({ proxied }) => {
    const proxy = proxied ? await proxyFor(o.url, 5672) : undefined;
    const setup = new RabbitSetup(adminUrl);
    const deadLetters = new Map<string, string>();
    const raw = createAmqp1Connection({
      config: { urls: [proxy ? proxy.url(o.url) : o.url], containerId: `jobrunner-test-${port}`, idleTimeoutMs: 10_000, ...(o.tls ? { tls: o.tls } : {}) },
      logger: silentLogger(),
      backoff: BACKOFF,
    });
    const conn = withSetup(raw, async (cfg) => {
      if (cfg.driver !== 'amqp1') return;
      const q = (cfg as Amqp1PipelineConfig).options.queue;
      const dlq = deadLetters.get(cfg.name);
      if (dlq !== undefined) await setup.queueWithDlq(q, dlq);
      else await setup.queue(q);
      // 3.x cannot declare the delay queue over AMQP 1.0; on 4.x the driver declares it itself
      if ((await setup.major()) < 4) await setup.delayQueue(q, 1500);
      else setup.track(`jobrunner.delay.${q}.1500`);
    });
    // RabbitMQ 3.x confirms each settlement (src/drivers/amqp1/settlements.ts): one ack per answer
    const confirmsSettlements = (await setup.major()) < 4;
    return {
      conn,
      ...(proxy === undefined ? {} : { proxy }),
      ...(confirmsSettlements ? { pace: (previous: Promise<void>) => previous.catch(() => undefined) } : {}),
      pipeline(opts) {
        const cfg = amqp1Pipeline(opts.name, { prefetch: opts.prefetch ?? 10 });
        if (opts.deadLetterTo !== undefined && opts.deadLetterTo.driver === 'amqp1') deadLetters.set(opts.name, (opts.deadLetterTo as Amqp1PipelineConfig).options.queue);
        return cfg;
      },
      // RabbitMQ 3.x gives amqp1 no count: read it over AMQP 0-9-1
      countReady: (pipe) => setup.messageCount(pipe.queue),
      async cleanup() {
        await setup.cleanup();
        await proxy?.close();
      },
    };
  };
}

/**
 * nats: a stream per pipeline; ack_wait 2 s so a message whose delivery went stale on a cut, or whose ack
 * was lost with it, comes back within the suite's limits. countUnacked reads the consumer's num_ack_pending
 * from the side. `adminTls`: how the side client reaches a server that requires TLS.
 */
export function natsTarget(o: TargetOptions & { adminTls?: NatsClientTls }): ConformanceFactory {
  return async ({ proxied }) => {
    const proxy = proxied ? await proxyFor(o.url, 4222) : undefined;
    const admin = new NatsAdmin(o.adminUrl ?? o.url, o.adminTls);
    const consumers = new Map<string, { stream: string; consumer: string }>();
    const conn = createNatsConnection({
      config: { urls: [proxy ? proxy.url(o.url) : o.url], ...(o.tls ? { tls: o.tls } : {}) },
      logger: silentLogger(),
      backoff: BACKOFF,
      reconnectWaitMs: 200,
    });
    return {
      conn,
      ...(proxy === undefined ? {} : { proxy }),
      pipeline(opts) {
        const cfg = natsPipeline(opts.name, { prefetch: opts.prefetch ?? 10, ackWaitMs: 2000 });
        admin.track(cfg.options.stream);
        consumers.set(cfg.name, { stream: cfg.options.stream, consumer: cfg.options.consumer });
        return cfg;
      },
      // a message whose ack was lost stays "ack pending" on the server until ack_wait, then comes back
      async countUnacked(pipe) {
        const c = consumers.get(pipe.name);
        if (c === undefined) throw new Error(`no pipeline ${pipe.name} from this target`);
        const { jsm } = await admin.conn();
        return (await jsm.consumers.info(c.stream, c.consumer)).num_ack_pending;
      },
      async cleanup() {
        await admin.cleanup();
        await proxy?.close();
      },
    };
  };
}
