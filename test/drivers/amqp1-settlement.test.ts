// amqp1 settlements on RabbitMQ 3.x are confirmed by the broker (src/drivers/amqp1/settlements.ts): the
// link settles first, so a disposition the broker never took would otherwise be lost without a trace
// and the job would run again with nothing logged. Here the connection is black-holed (a TCP proxy that
// drops every byte) before an ack: the ack must fail as stale rather than report success, and the
// message comes back once the connection is up again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery } from '../../src/drivers/driver.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { brokerUrls, publish, waitFor, withTimeout } from './conformance.js';
import { RabbitSetup, amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { brokerMajor } from '../helpers/faults.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const urls = brokerUrls('AMQP1_URLS');
if (urls === undefined) {
  test('amqp1 settlements', { skip: 'AMQP1_URLS is not set: run eval "$(sudo scripts/test-servers.sh)"' }, () => undefined);
} else {
  // RabbitMQ 4 is not asked to confirm: there a settlement is done when its frame is written
  for (const url of urls) {
    if ((await brokerMajor(url)) >= 4) continue;
    test(`amqp1 on ${url.replace(/\/\/[^@]*@/, '//')} (RabbitMQ 3.x): an ack the broker never confirms fails as stale, and the message comes back`, { timeout: 90_000 }, async () => {
      const setup = new RabbitSetup(url);
      const queue = `amqp1-confirm-${randomUUID().slice(0, 8)}`;
      await setup.queue(queue);
      const target = new URL(url);
      const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
      // a short idle timeout: the black-holed connection is given up after a few seconds
      const conn = createAmqp1Connection({ config: { urls: [proxy.url(url)], containerId: 'confirm-test', idleTimeoutMs: 1500 }, logger: silentLogger() });
      try {
        await withTimeout(conn.start(), 10_000, 'connect');
        const pipe = conn.pipeline(amqp1Pipeline(queue, { prefetch: 5 }));
        await pipe.declare();
        const id = await publish(pipe, {});
        const got: Delivery[] = [];
        await pipe.consume((d) => got.push(d));
        await waitFor('the delivery', () => got.length === 1);
        proxy.blackhole();
        const ack = got[0]!.ack().then(
          () => 'acked',
          (err: unknown) => (err instanceof JobrunnerError ? err.code : String(err)),
        );
        assert.equal(await withTimeout(ack, 60_000, 'the ack to settle or fail'), 'E_STALE_DELIVERY', 'an ack the broker never confirmed is not reported done');
        proxy.restore();
        await waitFor('the message again, on a new connection', () => got.length === 2, 60_000);
        assert.equal(got[1]!.id, id);
        assert.equal(got[1]!.redelivered, true);
        await got[1]!.ack();
        await pipe.close();
        assert.equal(await setup.messageCount(queue), 0);
      } finally {
        await conn.stop();
        await proxy.close();
        await setup.cleanup();
      }
    });
  }
}
