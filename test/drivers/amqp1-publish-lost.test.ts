// An amqp1 publish waiting for link credit when the connection drops fails at once (E_PUBLISH), instead
// of waiting out redial_timeout: rhea emits no link or session event on a disconnect, so the wait was
// left to its timer (120 s in the broker-fault tests), and the job whose follow-up it was stayed
// "settling" that long. Shutdown waited for such settlements: the daemon's stop after a node restart
// on RabbitMQ 3.10 once took over 30 s. The peer is a rhea container that never grants credit, behind a
// TCP proxy that cuts the connection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo, Server } from 'node:net';
import rhea from 'rhea';
import { pino } from 'pino';
import { createAmqp1Connection } from '../../src/drivers/amqp1/connection.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { amqp1Pipeline } from '../helpers/amqp1-rabbit.js';
import { waitFor } from '../helpers/wait.js';

test('an amqp1 publish waiting for credit fails at once when the connection drops, not after redial_timeout', { timeout: 30_000 }, async () => {
  // a peer that takes the attach of our sender and grants it no credit
  const peer = rhea.create_container({ id: 'no-credit-peer', credit_window: 0 } as Record<string, unknown>);
  let attached = 0;
  peer.on('receiver_open', () => void attached++);
  peer.on('error', () => undefined);
  peer.on('disconnected', () => undefined);
  const server = peer.listen({ port: 0, host: '127.0.0.1' }) as unknown as Server;
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const proxy = await startTcpProxy('127.0.0.1', (server.address() as AddressInfo).port);
  const conn = createAmqp1Connection({
    config: { urls: [`amqp://127.0.0.1:${proxy.port}`], containerId: 'jobrunner-test', idleTimeoutMs: 60_000 },
    logger: pino({ level: 'silent' }),
    backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
  });
  try {
    await conn.start();
    // redial_timeout 60 s: a wait left to its timer outlives this test
    const pipeline = conn.pipeline(amqp1Pipeline('q', { broker: 'generic', redialTimeoutMs: 60_000 }));
    const publishing = pipeline.publish({ id: 'j1', job: 'J', pipeline: 'q', body: Buffer.from('{}'), contentType: 'application/json', headers: {}, delayMs: 0 });
    publishing.catch(() => undefined);
    await waitFor('the sender attached (no credit)', () => attached >= 1, 10_000);
    proxy.cut();
    await assert.rejects(publishing, (err: Error & { code?: string }) => err.code === 'E_PUBLISH' && /lost/.test(err.message));
  } finally {
    await conn.stop();
    await proxy.close();
    server.close();
  }
});
