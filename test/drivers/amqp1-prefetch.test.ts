// amqp1 flow control against real RabbitMQ 3.10 and 4.0: prefetch is the number of unsettled
// deliveries (explicit credit, one credit back per settlement), whatever is waiting in the queue.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery } from '../../src/drivers/driver.js';
import { silentLogger } from '../../src/observability/logger.js';
import { brokerUrls, publish, sleep, waitFor, withTimeout } from './conformance.js';
import { RabbitSetup, amqp1Pipeline } from '../helpers/amqp1-rabbit.js';

const urls = brokerUrls('AMQP1_URLS');
if (urls === undefined) {
  test('amqp1 prefetch', { skip: 'AMQP1_URLS is not set: run eval "$(sudo scripts/test-servers.sh)"' }, () => undefined);
} else {
  for (const url of urls) {
    test(`amqp1 prefetch 3 on ${url.replace(/\/\/[^@]*@/, '//')}: a worker that never answers holds at most 3 unsettled`, { timeout: 30_000 }, async () => {
      const queue = `amqp1-prefetch-${randomUUID().slice(0, 8)}`;
      const setup = new RabbitSetup(url);
      await setup.queue(queue);
      const conn = createAmqp1Connection({ config: { urls: [url], containerId: 'prefetch-test', idleTimeoutMs: 10_000 }, logger: silentLogger() });
      try {
        await withTimeout(conn.start(), 10_000, 'connect');
        const pipe = conn.pipeline(amqp1Pipeline(queue, { prefetch: 3 }));
        await pipe.declare();
        for (let i = 0; i < 10; i++) await publish(pipe, {});
        const held: Delivery[] = [];
        await pipe.consume((d) => held.push(d));
        await waitFor('three deliveries', () => held.length === 3).catch(async (e: unknown) => { throw new Error(`${String(e)}: held ${held.length}, in queue ${await setup.messageCount(queue)}`); });
        // absent: nothing beyond the prefetch arrives while nothing is settled
        await sleep(700);
        assert.equal(held.length, 3);
        // one settlement gives exactly one credit back
        await held[0]?.ack();
        await waitFor('a fourth delivery after one ack', () => held.length === 4);
        await sleep(500);
        assert.equal(held.length, 4);
        await pipe.cancel();
        for (const d of held.slice(1)) await d.ack();
        await pipe.close();
        assert.equal(await setup.messageCount(queue), 6);
      } finally {
        await conn.stop();
        await setup.cleanup();
      }
    });
  }
}
