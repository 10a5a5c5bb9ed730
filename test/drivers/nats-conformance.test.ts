// The shared driver conformance suite run on the nats driver against the nats-server in NATS_URLS
// (JetStream; 2.9 on the test machine). Each pipeline gets its own stream; ack_wait is 2s so a message
// whose delivery went stale on a cut comes back within the suite's limits. JetStream has no dead-lettering
// of its own: reject(false) terminates the message (capabilities().nativeDeadLetter is false).

import { test } from 'node:test';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { brokerUrls, runConformance, type ConformanceFactory } from './conformance.js';
import { createNatsConnection } from '../../src/drivers/nats/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { NatsAdmin, natsPipeline } from '../helpers/nats.js';

const urls = brokerUrls('NATS_URLS');
if (urls === undefined) {
  test('nats conformance', { skip: 'NATS_URLS is not set: run eval "$(/work/shared/brokers/up)"' }, () => undefined);
} else {
  for (const url of urls) {
    const factory: ConformanceFactory = async ({ proxied }) => {
      let proxy: TcpProxy | undefined;
      let target = url;
      if (proxied) {
        proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port || 4222));
        target = proxy.url(url);
      }
      const admin = new NatsAdmin(url);
      const conn = createNatsConnection({
        config: { urls: [target] },
        logger: silentLogger(),
        backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 },
        reconnectWaitMs: 200,
      });
      return {
        conn,
        ...(proxy === undefined ? {} : { proxy }),
        pipeline(opts) {
          const cfg = natsPipeline(opts.name, { prefetch: opts.prefetch ?? 10, ackWaitMs: 2000 });
          admin.track(cfg.options.stream);
          return cfg;
        },
        async cleanup() {
          await admin.cleanup();
          await proxy?.close();
        },
      };
    };
    runConformance(`nats on ${url.replace(/\/\/[^@]*@/, '//')}`, factory);
  }
}
