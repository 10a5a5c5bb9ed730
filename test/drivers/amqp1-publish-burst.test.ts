// A burst of amqp1 publishes on one pipeline (one sender link): more than rhea's outgoing buffer (2048
// deliveries) and more than the broker's link credit at once. Each publish waits its turn for credit,
// is sent once and resolves on the broker's outcome; nothing is lost or doubled, and no Node warning
// (MaxListenersExceededWarning) comes of the waiting. Counted on both shared brokers by consuming the
// queue back: every id once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import type { Delivery, OutgoingJob } from '../../src/drivers/driver.js';
import { silentLogger } from '../../src/observability/logger.js';
import { brokerUrls, waitFor, withTimeout } from './conformance.js';
import { RabbitSetup, amqp1Pipeline } from '../helpers/amqp1-rabbit.js';

const BURST = 5000;

function job(pipeline: string, n: number): OutgoingJob {
  return { id: randomUUID(), job: 'Burst', pipeline, body: Buffer.from(JSON.stringify({ n })), contentType: 'application/json', headers: {}, delayMs: 0 };
}

const urls = brokerUrls('AMQP1_URLS');
if (urls === undefined) {
  test('amqp1 publish burst', { skip: 'AMQP1_URLS is not set: run eval "$(sudo scripts/test-servers.sh)"' }, () => undefined);
} else {
  for (const url of urls) {
    test(`amqp1 on ${url.replace(/\/\/[^@]*@/, '//')}: ${BURST} concurrent publishes on one pipeline are each sent once and confirmed`, { timeout: 300_000 }, async () => {
      const setup = new RabbitSetup(url);
      const queue = `amqp1-burst-${randomUUID().slice(0, 8)}`;
      await setup.queue(queue);
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
      process.on('warning', onWarning);
      const conn = createAmqp1Connection({ config: { urls: [url], containerId: 'burst-test', idleTimeoutMs: 30_000 }, logger: silentLogger() });
      try {
        await withTimeout(conn.start(), 30_000, 'connect');
        const pipe = conn.pipeline(amqp1Pipeline(queue, { prefetch: 500, redialTimeoutMs: 120_000 }));
        await pipe.declare();
        const jobs = Array.from({ length: BURST }, (_, n) => job(queue, n));
        const results = await withTimeout(
          Promise.allSettled(jobs.map((j) => pipe.publish(j))),
          240_000,
          `${BURST} publishes to settle`,
        );
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        const reasons = [...new Set(failed.map((r) => String((r.reason as Error)?.message ?? r.reason)))];
        assert.deepEqual({ failed: failed.length, reasons: reasons.slice(0, 3) }, { failed: 0, reasons: [] }, 'every publish is confirmed');

        // count what the queue holds: every id once, nothing more
        const seen = new Map<string, number>();
        const held: Delivery[] = [];
        await pipe.consume((d) => {
          seen.set(d.id, (seen.get(d.id) ?? 0) + 1);
          held.push(d);
          void d.ack().catch(() => undefined);
        });
        await waitFor(`${BURST} messages back from ${queue}`, () => held.length >= BURST, 180_000);
        await pipe.cancel();
        await waitFor(`${queue} drained`, async () => (await setup.messageCount(queue)) === 0, 60_000);
        const published = new Set(jobs.map((j) => j.id));
        const duplicates = [...seen.values()].filter((c) => c > 1).length;
        const lost = [...published].filter((id) => !seen.has(id)).length;
        const strangers = [...seen.keys()].filter((id) => !published.has(id)).length;
        console.log(`published ${BURST} / received ${held.length} / distinct ${seen.size} / lost ${lost} / duplicates ${duplicates}`);
        assert.deepEqual({ lost, duplicates, strangers, received: held.length }, { lost: 0, duplicates: 0, strangers: 0, received: BURST });
        await pipe.close();
        assert.deepEqual(warnings, [], 'no Node warning while publishes wait');
      } finally {
        process.off('warning', onWarning);
        await conn.stop();
        await setup.cleanup();
      }
    });
  }
}
