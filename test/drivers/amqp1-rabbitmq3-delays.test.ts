// amqp1 on RabbitMQ 3.x cannot declare delay queues: a pipeline whose retry policy needs them fails at
// start with E_DELAY_UNSUPPORTED (src/pipelines/capability-checks.ts reads the driver's capabilities), instead of looping redeliveries at the first retry.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import { checkCapabilities } from '../../src/pipelines/capability-checks.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { brokerUrls } from './conformance.js';
import { RabbitSetup, amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { brokerMajor } from '../helpers/faults.js';

const urls = brokerUrls('AMQP1_URLS');

test('amqp1 on RabbitMQ 3.x: a retry policy with jitter, or with a missing delay queue, is an error at start', { timeout: 30_000 }, async (t) => {
  if (!urls) return t.skip('AMQP1_URLS not set: run eval "$(sudo scripts/test-servers.sh)"');
  let url: string | undefined;
  for (const u of urls) if ((await brokerMajor(u).catch(() => 0)) === 3) url = u;
  if (!url) {
    if (process.env['CI'] === 'true') assert.fail('no RabbitMQ 3.x in AMQP1_URLS');
    return t.skip('no RabbitMQ 3.x in AMQP1_URLS');
  }
  const q = `jr-a1-delay-${randomUUID().slice(0, 8)}`;
  const setup = new RabbitSetup(url);
  const conn = createAmqp1Connection({ config: { urls: [url], containerId: 'jobrunner-test', idleTimeoutMs: 60_000 }, logger: pino({ level: 'silent' }) });
  try {
    await setup.queue(q);
    await conn.start();
    const withRetry = (jitter: number) => ({ ...amqp1Pipeline(q), name: `${q}-${jitter}`, retry: { maxAttempts: 3, backoff: { initialMs: 1000, maxMs: 60_000, multiplier: 2, jitter } } });
    const code = async (p: ReturnType<typeof withRetry>): Promise<string> => {
      try {
        // the driver declares; the check of the retry policy against its capabilities is the pipeline's
        const broker = conn.pipeline(p);
        await broker.declare();
        await checkCapabilities(p, broker, pino({ level: 'silent' }));
        return 'ok';
      } catch (err) {
        assert.ok(err instanceof JobrunnerError);
        return `${err.code}: ${err.message}`;
      }
    };
    assert.match(await code(withRetry(0.2)), /^E_DELAY_UNSUPPORTED: .*jitter makes their names unpredictable/);
    assert.match(await code(withRetry(0)), new RegExp(`^E_DELAY_UNSUPPORTED: .*needs the delay queue jobrunner\\.delay\\.${q}\\.1000`));
    await setup.queue(`jobrunner.delay.${q}.1000`, { 'x-message-ttl': 1000, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q });
    assert.match(await code(withRetry(0)), new RegExp(`needs the delay queue jobrunner\\.delay\\.${q}\\.2000`));
    await setup.queue(`jobrunner.delay.${q}.2000`, { 'x-message-ttl': 2000, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q });
    assert.equal(await code(withRetry(0)), 'ok', 'with every delay queue there, the pipeline starts');
    assert.equal(await code({ ...amqp1Pipeline(q), name: `${q}-plain` } as ReturnType<typeof withRetry>), 'ok', 'no retry block: nothing to check');
  } finally {
    await conn.stop();
    await setup.cleanup();
  }
});
