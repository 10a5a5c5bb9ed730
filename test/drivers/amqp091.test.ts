// The driver conformance suite against the amqp091 driver, once per broker in AMQP091_URLS
// (RabbitMQ 3.10 and 4.0). Skips without brokers unless CI=true.

import { test } from 'node:test';
import { createAmqp091Connection } from '../../src/drivers/amqp091/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { amqpPipeline, RawBroker, TEST_DELAYS_MS } from './amqp091-helpers.js';
import { brokerUrls, queueOf, runConformance, type ConformanceTarget } from './conformance.js';

const urls = brokerUrls('AMQP091_URLS');
if (urls === undefined) {
  test('amqp091 conformance', { skip: 'AMQP091_URLS is not set (run: eval "$(sudo scripts/test-servers.sh)")' }, () => undefined);
} else {
  for (const url of urls) {
    runConformance(`amqp091 ${new URL(url).host}`, async ({ proxied }): Promise<ConformanceTarget> => {
      let proxy: TcpProxy | undefined;
      if (proxied) {
        const u = new URL(url);
        proxy = await startTcpProxy(u.hostname, Number(u.port || 5672));
      }
      const conn = createAmqp091Connection({ config: { urls: [proxy ? proxy.url(url) : url] }, logger: silentLogger() });
      const queues = new Set<string>();
      const exchanges = new Set<string>();
      const target: ConformanceTarget = {
        conn,
        pipeline(opts) {
          // a direct exchange per pipeline, so publishing goes through a binding
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
          const raw = await RawBroker.open(url);
          try {
            await raw.deleteQueues([...queues].flatMap((q) => [q, ...TEST_DELAYS_MS.map((ms) => `jobrunner.delay.${q}.${ms}`)]));
            await raw.deleteExchanges(exchanges);
          } finally {
            await raw.close();
          }
        },
      };
      if (proxy !== undefined) target.proxy = proxy;
      return target;
    });
  }
}
