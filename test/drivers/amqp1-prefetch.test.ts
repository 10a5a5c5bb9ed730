// amqp1 flow control against real RabbitMQ 3.10 and 4.0: prefetch is the number of unsettled
// deliveries (explicit credit, given back after settlements), whatever is waiting in the queue, and the
// broker never sends beyond the credit given.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery } from '../../src/drivers/driver.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
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

// RabbitMQ 3.x's AMQP 1.0 plugin turns each flow frame into an absolute credit for the queue, computed
// from the transfers it has written so far: deliveries already on their way from the queue are not in
// that count, so a flow sent while credit is still out let the queue send them twice over (hundreds of
// "Received transfer when credit was 0" a run, and more unsettled than prefetch). A clean run, with a
// pause and resume in the middle, counts both: no delivery beyond the credit, never more than prefetch.
if (urls !== undefined) {
  for (const url of urls) {
    test(`amqp1 on ${url.replace(/\/\/[^@]*@/, '//')}: a clean run of 600 jobs answered out of order, paused once, gets no delivery beyond the link credit and never holds more than prefetch`, { timeout: 120_000 }, async () => {
      const queue = `amqp1-credit-${randomUUID().slice(0, 8)}`;
      const setup = new RabbitSetup(url);
      await setup.queue(queue);
      const lines: string[] = [];
      const capture = new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      });
      const conn = createAmqp1Connection({ config: { urls: [url], containerId: 'credit-test', idleTimeoutMs: 10_000 }, logger: createLogger({ level: 'debug', destination: capture }) });
      const prefetch = 10;
      const total = 600;
      try {
        await withTimeout(conn.start(), 10_000, 'connect');
        const pipe = conn.pipeline(amqp1Pipeline(queue, { prefetch }));
        await pipe.declare();
        for (let i = 0; i < total; i += 10) await Promise.all(Array.from({ length: 10 }, () => publish(pipe, {})));
        const acked = new Set<string>();
        let held = 0;
        let maxHeld = 0;
        let n = 0;
        const onDelivery = (d: Delivery): void => {
          held++;
          maxHeld = Math.max(maxHeld, held);
          // answers come back out of order, a few ms apart, as from a pool of workers
          setTimeout(() => {
            void d.ack().then(() => {
              held--;
              acked.add(d.id);
            });
          }, n++ % 5);
        };
        await pipe.consume(onDelivery);
        await waitFor('half the jobs acked', () => acked.size >= total / 2, 60_000);
        await pipe.cancel();
        await waitFor('the held jobs settled after the pause', () => held === 0, 30_000);
        await pipe.consume(onDelivery);
        await waitFor(`all ${total} jobs acked`, () => acked.size === total, 60_000);
        await pipe.cancel();
        await pipe.close();
        const overruns = lines.filter((l) => l.includes('beyond the link credit')).length;
        console.log(`jobs ${total}, acked ${acked.size}, most held at once ${maxHeld} (prefetch ${prefetch}), deliveries beyond the credit ${overruns}`);
        assert.equal(overruns, 0, 'deliveries beyond the link credit');
        assert.ok(maxHeld <= prefetch, `held ${maxHeld} at once, prefetch ${prefetch}`);
        assert.equal(await setup.messageCount(queue), 0);
      } finally {
        await conn.stop();
        await setup.cleanup();
      }
    });
  }
}
