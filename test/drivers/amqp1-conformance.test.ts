// The shared driver conformance suite run on the amqp1 driver against RabbitMQ 3.10 (AMQP 1.0 plugin,
// :5672) and RabbitMQ 4.0 (native AMQP 1.0, :5673), one run per URL in AMQP1_URLS.
// Queues (and the dead-letter arguments) are created over AMQP 0-9-1 in test setup: AMQP 1.0 cannot
// declare on 3.x. On 3.x the delay queue is created the same way (see docs/drivers/amqp1-rabbitmq3.md).

import { test } from 'node:test';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { brokerUrls, runConformance, type ConformanceFactory } from './conformance.js';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { RabbitSetup, amqp1Pipeline, withSetup, type Amqp1PipelineConfig } from '../helpers/amqp1-rabbit.js';

const urls = brokerUrls('AMQP1_URLS');
if (urls === undefined) {
  test('amqp1 conformance', { skip: 'AMQP1_URLS is not set: run eval "$(sudo scripts/test-servers.sh)"' }, () => undefined);
} else {
  for (const url of urls) {
    const port = Number(new URL(url).port || 5672);
    const factory: ConformanceFactory = async ({ proxied }) => {
      let proxy: TcpProxy | undefined;
      let target = url;
      if (proxied) {
        proxy = await startTcpProxy('127.0.0.1', port);
        target = proxy.url(url);
      }
      const setup = new RabbitSetup(url);
      const raw = createAmqp1Connection({
        config: { urls: [target], containerId: `jobrunner-test-${port}`, idleTimeoutMs: 10_000 },
        logger: silentLogger(),
        backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 },
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
      const deadLetters = new Map<string, string>();
      return {
        conn,
        ...(proxy === undefined ? {} : { proxy }),
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
    runConformance(`amqp1 on ${url.replace(/\/\/[^@]*@/, '//')}`, factory);
  }
}
