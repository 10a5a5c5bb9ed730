// /health follows the broker (SPEC §7): a TCP proxy between the daemon and RabbitMQ stands in for the
// broker going away (the shared brokers are never stopped). /health stays 200 while the connection is
// being redialled for less than redial_timeout, turns 503 after it, and 200 again once the broker is back;
// /ready is 503 while disconnected; broker_connected and broker_reconnects_total follow.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { PipelineConfig } from '../../src/config/types.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { OBS_WORKER, amqp091Options, brokerUrls, config, http, metric, pool, runDaemon, scrape, waitFor } from '../observability/support.js';

const brokers = brokerUrls('AMQP091_URLS');
const first = 'urls' in brokers ? (brokers.urls[0] as string) : 'amqp://127.0.0.1:5672';

test('/health turns 503 after redial_timeout without the broker and 200 when it returns', { skip: 'skip' in brokers ? brokers.skip : false }, async () => {
  const target = new URL(first);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
  const queue = `jobrunner-test-health-${randomUUID()}`;
  const pipeline = (name: string, redialTimeoutMs: number, out: string): PipelineConfig =>
    ({ name, driver: 'amqp091', command: [process.execPath, OBS_WORKER], env: { OBS_OUT: out }, pool: pool(), consume: true, requeueOnFail: false, redialTimeoutMs, options: amqp091Options(`${queue}-${name}`) }) as PipelineConfig;
  let run: Awaited<ReturnType<typeof runDaemon>> | undefined;
  try {
    run = await runDaemon((out) =>
      // one connection, two redial_timeouts: `work` gives up after 1.5 s, `patient` after a minute
      config([pipeline('work', 1500, out), pipeline('patient', 60_000, out)], { connections: { amqp: { urls: [proxy.url(first)] } } }),
    );
    const url = run.url;
    await waitFor('ready', async () => (await http('GET', `${url}/ready`)).status === 200);
    assert.equal((await http('GET', `${url}/health`)).status, 200);
    assert.equal(metric(await scrape(url), 'jobrunner_broker_connected', { connection: 'amqp091' }), 1);

    proxy.down(); // connections reset, new ones refused: the broker is gone
    await waitFor('the daemon notices', async () => (await http('GET', `${url}/health`)).body.pipelines.work.connected === false);
    const seen = await waitFor('health 503 after redial_timeout', async () => {
      const h = await http('GET', `${url}/health`);
      return h.status === 503 ? h : undefined;
    });
    assert.equal(seen.body.status, 'unhealthy');
    assert.equal(seen.body.pipelines.work.healthy, false);
    assert.match(String(seen.body.pipelines.work.error), /connection lost|cannot connect/);
    // within its redial_timeout a pipeline stays healthy while the connection is redialled
    assert.deepEqual({ ...seen.body.pipelines.patient, error: undefined }, { healthy: true, connected: false, consuming: true, workers: 1, error: undefined });
    assert.equal((await http('GET', `${url}/ready`)).status, 503);
    assert.equal(metric(await scrape(url), 'jobrunner_broker_connected', { connection: 'amqp091' }), 0);
    assert.ok(run.logs.some((l) => l.level === 'info' && l.msg === 'broker disconnected'), 'the state change is logged at info');

    proxy.restore();
    await waitFor('health 200 with the broker back', async () => (await http('GET', `${url}/health`)).status === 200, 30_000);
    await waitFor('ready again', async () => (await http('GET', `${url}/ready`)).status === 200, 10_000);
    const s = await scrape(url);
    assert.equal(metric(s, 'jobrunner_broker_connected', { connection: 'amqp091' }), 1);
    assert.equal(metric(s, 'jobrunner_broker_reconnects_total', { connection: 'amqp091' }), 1);
    // and it consumes again
    assert.equal((await http('POST', `${url}/pipelines/work/jobs`, { job: 'T', payload: { do: 'ack' } })).status, 202);
    await waitFor('the job ran after the reconnect', () => run?.received().length === 1);
    assert.equal((await http('GET', `${url}/health`)).body.pipelines.patient.healthy, true);
  } finally {
    proxy.restore();
    await run?.stop();
    await proxy.close();
  }
});
