// amqp1 pure parts: broker detection, addresses, settlement outcomes, message decoding and encoding.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import rhea from 'rhea';
import { consumeAddress, detectBroker, publishAddress, rejectOutcome } from '../../src/drivers/amqp1/broker.js';
import { decodeMessage, encodeJob } from '../../src/drivers/amqp1/message.js';
import { connectionOptions } from '../../src/drivers/amqp1/connection.js';
import { installLeanDeliveries, leanDeliveriesInstalled, PATCHED_RHEA_VERSION } from '../../src/drivers/amqp1/rhea-patches.js';

test('amqp1 detects RabbitMQ 3, RabbitMQ 4, Service Bus and generic brokers', () => {
  assert.equal(detectBroker({ product: 'RabbitMQ', version: '3.10.8' }, '127.0.0.1').kind, 'rabbitmq3');
  assert.equal(detectBroker({ product: 'RabbitMQ', version: '4.0.5' }, '127.0.0.1').kind, 'rabbitmq4');
  assert.equal(detectBroker(undefined, 'ns.servicebus.windows.net').kind, 'servicebus');
  assert.equal(detectBroker({ product: 'apache-activemq-artemis' }, 'mq').kind, 'generic');
});

test('amqp1 addresses per broker, address overrides', () => {
  assert.equal(consumeAddress('rabbitmq3', { queue: 'a b' }), '/amq/queue/a b');
  assert.equal(consumeAddress('rabbitmq4', { queue: 'a b' }), '/queues/a%20b');
  assert.equal(publishAddress('rabbitmq4', { queue: 'q', exchange: 'x/y', routingKey: 'k 1' }), '/exchanges/x%2Fy/k%201');
  assert.equal(publishAddress('rabbitmq3', { queue: 'q', exchange: 'x', routingKey: 'k' }), '/exchange/x/k');
  assert.equal(consumeAddress('servicebus', { queue: 'orders', address: 'orders/subscriptions/s1' }), 'orders/subscriptions/s1');
});

test('amqp1 settlement: 3.x never gets modified, 4.x and Service Bus count requeues, Service Bus dead-letters with a reason', () => {
  assert.deepEqual(rejectOutcome('rabbitmq3', true), { kind: 'released' });
  assert.deepEqual(rejectOutcome('rabbitmq3', false, 'x'), { kind: 'rejected' });
  assert.deepEqual(rejectOutcome('rabbitmq4', true), { kind: 'modified', deliveryFailed: true, undeliverableHere: false });
  assert.deepEqual(rejectOutcome('generic', true), { kind: 'released' });
  const dl = rejectOutcome('servicebus', false, 'bad input');
  assert.equal(dl.kind, 'rejected');
  assert.equal(dl.kind === 'rejected' ? dl.condition : '', 'com.microsoft:dead-letter');
  assert.equal(dl.kind === 'rejected' ? dl.info?.['DeadLetterReason'] : '', 'bad input');
});

test('amqp1 bodies: data, amqp-value string/binary/map and amqp-sequence; headers from properties and annotations', () => {
  const ctx = { pipeline: 'p', queue: 'q' };
  assert.equal(decodeMessage({ body: rhea.message.data_section(Buffer.from('raw')) }, ctx).body.toString(), 'raw');
  assert.equal(decodeMessage({ body: 'text' }, ctx).body.toString(), 'text');
  assert.equal(decodeMessage({ body: Buffer.from('bin') }, ctx).body.toString(), 'bin');
  assert.deepEqual(JSON.parse(decodeMessage({ body: { a: 1, b: [true] } }, ctx).body.toString()), { a: 1, b: [true] });
  assert.deepEqual(JSON.parse(decodeMessage({ body: rhea.message.sequence_section([1, 'x']) }, ctx).body.toString()), [1, 'x']);
  const d = decodeMessage(
    {
      body: 'x',
      subject: 'Job',
      message_id: 'mid',
      delivery_count: 2,
      first_acquirer: false,
      application_properties: { tenant: 'acme', n: 5, rr_headers: '{"k":["v"]}' },
      message_annotations: { 'x-opt-enqueued-time': 7 },
    },
    ctx,
  );
  assert.equal(d.job, 'Job');
  assert.equal(d.id, 'mid');
  assert.equal(d.attempt, 3);
  assert.equal(d.redelivered, true);
  assert.deepEqual(d.headers, { k: ['v'], 'x-opt-enqueued-time': ['7'], tenant: ['acme'], n: ['5'] });
  assert.match(decodeMessage({ body: 'x', application_properties: { rr_headers: 'not json' } }, ctx).invalid ?? '', /rr_headers/);
});

test('amqp1 encodes a job as one data section with RoadRunner application properties', () => {
  const m = encodeJob(
    { id: 'i1', job: 'J', pipeline: 'p', body: Buffer.from('b'), contentType: 'text/plain', headers: { a: ['1'] }, delayMs: 2000, attempt: 2 },
    { durable: true, defaultPriority: 0 },
  );
  assert.equal(m.message_id, 'i1');
  assert.equal(m.subject, 'J');
  assert.equal(m.durable, true);
  assert.equal((m.body as { typecode: number }).typecode, 0x75);
  assert.equal(m.application_properties?.['rr_headers'], '{"a":["1"]}');
  assert.equal(m.application_properties?.['rr_id'], 'i1');
});

test('amqp1 connection options: SASL PLAIN from the URL-decoded user and password, vhost, TLS', () => {
  const o = connectionOptions('amqps://Root%20Key:p%2Fw%3D@ns.servicebus.windows.net/', { containerId: 'c', idleTimeoutMs: 5000 }) as unknown as Record<string, unknown>;
  assert.equal(o['username'], 'Root Key');
  assert.equal(o['password'], 'p/w=');
  assert.equal(o['port'], 5671);
  assert.equal(o['transport'], 'tls');
  assert.equal(o['reconnect'], false);
  const v = connectionOptions('amqp://guest:guest@h:5673/prod', { containerId: 'c', idleTimeoutMs: 5000 }) as unknown as Record<string, unknown>;
  assert.equal(v['hostname'], 'vhost:prod');
});

test("rhea's debug loggers that DEBUG does not name become no-ops once a connection starts; named ones stay", () => {
  // a fresh process per DEBUG value: the driver patches rhea's shared log module when its gate opens (start())
  const script = `
    import { createRequire } from 'node:module';
    const { openRheaGate } = await import(${JSON.stringify(new URL('../../src/drivers/amqp1/rhea-gate.ts', import.meta.url).href)});
    openRheaGate();
    const require = createRequire(${JSON.stringify(import.meta.url)});
    const log = require(require.resolve('rhea').replace(/container\\.js$/, 'log.js'));
    console.log(JSON.stringify(Object.fromEntries(Object.entries(log).map(([k, f]) => [k, String(f).includes('...args') ? 'debug' : 'noop']))));
  `;
  const run = (env: NodeJS.ProcessEnv): Record<string, string> => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
  };
  const { DEBUG: _unset, ...withoutDebug } = process.env;
  const quiet = run(withoutDebug);
  assert.ok(Object.keys(quiet).length >= 5, JSON.stringify(quiet));
  assert.deepEqual(new Set(Object.values(quiet)), new Set(['noop']));
  const framesOn = run({ ...withoutDebug, DEBUG: 'rhea:frames' });
  assert.equal(framesOn['frames'], 'debug');
  assert.equal(framesOn['events'], 'noop');
});

test('the lean rhea delivery patch recognises the pinned rhea and installs (a rhea upgrade must re-check it)', () => {
  const container = rhea.create_container({ id: 'lean-deliveries-test' });
  // never connects (port 1 refuses, no reconnect): only the session object is needed
  const connection = container.connect({ host: '127.0.0.1', port: 1, reconnect: false });
  connection.on('disconnected', () => undefined);
  connection.on('connection_error', () => undefined);
  const session = connection.create_session();
  installLeanDeliveries(session);
  assert.equal(leanDeliveriesInstalled(), true, `rhea ${PATCHED_RHEA_VERSION} expected; see src/drivers/amqp1/rhea-patches.ts`);
  const onTransfer = String((Object.getPrototypeOf((session as unknown as { incoming: object }).incoming) as { on_transfer: unknown }).on_transfer);
  assert.match(onTransfer, /new LeanDelivery/);
});
