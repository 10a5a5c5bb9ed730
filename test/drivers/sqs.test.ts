// The sqs driver's own behaviour on an SQS emulator (fauxqs on 127.0.0.1, in this process), not AWS:
// native retry by visibility, redrive with body and attributes intact, visibility extension of long
// jobs, delays past SQS's limit, FIFO order within a group, RoadRunner's attributes, third-party
// messages. Every test counts message ids in and out.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { BrokerPipeline, Delivery } from '../../src/drivers/driver.js';
import { createSqsConnection, type SqsConnection } from '../../src/drivers/sqs/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { EMULATOR, startSqsEmulator, type SqsEmulator } from '../helpers/sqs-emulator.js';
import { publish, sleep, waitFor } from './conformance.js';
import { emulatorConnection, sqsPipeline } from './sqs-helpers.js';

const T = 60_000;
let emu: SqsEmulator;
before(async () => {
  emu = await startSqsEmulator();
});
after(async () => {
  await emu.stop();
});

/** A connection and the pipelines a test opens, closed and their queues deleted at the end. */
async function withPipes(body: (open: (config: Record<string, unknown>, extra?: Parameters<typeof sqsPipeline>[2]) => Promise<BrokerPipeline>, conn: SqsConnection) => Promise<void>, conn: SqsConnection = emulatorConnection(emu)): Promise<void> {
  const opened: BrokerPipeline[] = [];
  await conn.start();
  try {
    await body(async (config, extra) => {
      const name = String(config['queue']);
      emu.track(name);
      const p = conn.pipeline(sqsPipeline(name.replace(/\.fifo$/, ''), config, extra));
      opened.push(p);
      await p.declare();
      return p;
    }, conn);
  } finally {
    await Promise.allSettled([...pending]);
    for (const p of opened.reverse()) await p.close().catch(() => undefined);
    await conn.stop();
    await emu.cleanup();
  }
}

/** settlements still in flight: awaited before a test's queues are deleted */
const pending = new Set<Promise<unknown>>();
function track(p: Promise<unknown>): void {
  const q2 = p.catch(() => undefined).finally(() => pending.delete(q2));
  pending.add(q2);
}
function retryLater(d: Delivery, ms: number): Promise<void> {
  return (d as Delivery & { retryLater(ms: number): Promise<void> }).retryLater(ms);
}

function q(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

describe(`sqs driver on the ${EMULATOR}`, { concurrency: false }, () => {
  test(`retryLater(delay): the same message is invisible for at least the delay, then comes back as attempt 2 (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const pipe = await open({ queue: q('retry'), visibility_timeout: 30 });
      const id = await publish(pipe, { body: Buffer.from('again') });
      const seen: { d: Delivery; at: number }[] = [];
      await pipe.consume((d) => {
        seen.push({ d, at: Date.now() });
        if (seen.length === 1) track(retryLater(d, 2000));
        else track(d.ack());
      });
      await waitFor('the retried message', () => seen.length === 2);
      await pipe.cancel();
      const [first, second] = seen as [{ d: Delivery; at: number }, { d: Delivery; at: number }];
      assert.equal(first.d.id, id);
      assert.equal(second.d.id, id);
      assert.equal(first.d.messageId, second.d.messageId, 'the same SQS message, not a copy');
      assert.equal(first.d.attempt, 1);
      assert.equal(second.d.attempt, 2);
      assert.equal(second.d.redelivered, true);
      assert.ok(second.at - first.at >= 2000, `came back after ${second.at - first.at} ms, before the 2000 ms delay`);
      assert.equal(second.d.headers['ApproximateReceiveCount']?.[0], '2');
      await sleep(300);
      assert.equal(seen.length, 2);
    });
  });

  test(`after maxReceiveCount receives SQS moves the message to the redrive queue, body and attributes intact (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const dlqName = q('redrive-dlq');
      await open({ queue: dlqName });
      const pipe = await open({ queue: q('redrive'), attributes: { RedrivePolicy: { deadLetterTargetArn: emu.arn(dlqName), maxReceiveCount: 3 } } });
      const id = await publish(pipe, { job: 'Poison', body: Buffer.from('{"n":1}'), headers: { tenant: ['acme'] }, priority: 7 });
      const attempts: number[] = [];
      await pipe.consume((d) => {
        attempts.push(d.attempt);
        track(retryLater(d, 0));
      });
      // three receives, then SQS itself moves it
      await waitFor('three attempts', () => attempts.length === 3);
      await sleep(1500);
      await pipe.cancel();
      assert.deepEqual(attempts, [1, 2, 3]);
      const dead = await emu.receive(dlqName, 10, 5);
      assert.equal(dead.length, 1);
      const m = dead[0]!;
      assert.equal(m.Body, '{"n":1}');
      const a = m.MessageAttributes ?? {};
      assert.equal(a['rr_id']?.StringValue, id);
      assert.equal(a['rr_job']?.StringValue, 'Poison');
      assert.equal(a['rr_priority']?.StringValue, '7');
      assert.equal(a['rr_priority']?.DataType, 'Number');
      assert.deepEqual(JSON.parse(Buffer.from(a['rr_headers']!.BinaryValue!).toString()), { tenant: ['acme'] });
      assert.equal(a['content-type']?.StringValue, 'application/json');
      assert.equal(await pipe.readyCount(), 0);
    });
  });

  test(`reject(false) with a redrive policy: the message never reaches a worker again and lands in the redrive queue (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const dlqName = q('giveup-dlq');
      await open({ queue: dlqName });
      const pipe = await open({ queue: q('giveup'), attributes: { RedrivePolicy: { deadLetterTargetArn: emu.arn(dlqName), maxReceiveCount: 5 } } });
      const id = await publish(pipe, { body: Buffer.from('bad') });
      const keep = await publish(pipe, { body: Buffer.from('good') });
      const seen: string[] = [];
      await pipe.consume((d) => {
        seen.push(d.id);
        if (d.id === id) track(d.reject(false, 'poison'));
        else track(d.ack());
      });
      const dead = await (async () => {
        for (let i = 0; i < 30; i++) {
          const got = await emu.receive(dlqName, 10, 1);
          if (got.length > 0) return got;
        }
        return [];
      })();
      await pipe.cancel();
      assert.equal(dead.length, 1);
      assert.equal(dead[0]?.MessageAttributes?.['rr_id']?.StringValue, id);
      assert.equal(dead[0]?.Body, 'bad');
      assert.deepEqual(seen.filter((s) => s === id), [id], 'handed to the worker once');
      assert.ok(seen.includes(keep));
    });
  });

  for (const extend of [true, false]) {
    test(`a job three times as long as the visibility timeout is delivered ${extend ? 'once with' : 'twice without'} visibility extension (${EMULATOR})`, { timeout: T }, async () => {
      await withPipes(async (open) => {
        const pipe = await open({ queue: q(extend ? 'long' : 'long-noext'), visibility_timeout: 2, extend_visibility: extend, wait_time_seconds: 1 });
        const id = await publish(pipe, { body: Buffer.from('slow') });
        const seen: Delivery[] = [];
        await pipe.consume((d) => {
          seen.push(d);
          if (seen.length === 1) setTimeout(() => track(d.ack().catch(() => undefined)), 6000);
          else track(d.ack());
        });
        await waitFor('the first delivery', () => seen.length >= 1);
        await sleep(7500);
        await pipe.cancel();
        assert.ok(seen.every((d) => d.id === id));
        if (extend) {
          assert.equal(seen.length, 1, 'delivered once');
          assert.equal(await pipe.readyCount(), 0);
        } else {
          assert.ok(seen.length >= 2, `delivered ${seen.length} times`);
          assert.equal(seen[1]?.attempt, 2);
          assert.equal(seen[0]?.live?.(), false, 'the first delivery knows its visibility ran out');
        }
      });
    });
  }

  test(`a push delayed past SQS's native limit is re-delayed on receipt and arrives when due (${EMULATOR}; limit shortened to 1 s, the same code path as 900 s)`, { timeout: T }, async () => {
    const conn = createSqsConnection({ settings: emu.settings, logger: silentLogger(), maxNativeDelayS: 1 });
    await withPipes(async (open) => {
      const pipe = await open({ queue: q('longdelay'), wait_time_seconds: 1 });
      const at = Date.now();
      const id = await publish(pipe, { delayMs: 3500, body: Buffer.from('later'), attempt: 2 });
      const seen: { d: Delivery; at: number }[] = [];
      await pipe.consume((d) => {
        seen.push({ d, at: Date.now() });
        track(d.ack());
      });
      await waitFor('the delayed job', () => seen.length === 1, 15_000);
      await sleep(500);
      await pipe.cancel();
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.d.id, id);
      assert.equal(seen[0]?.d.body.toString(), 'later');
      assert.equal(seen[0]?.d.attempt, 2, 're-delays are not attempts');
      assert.ok(seen[0]!.at - at >= 3500, `arrived after ${seen[0]!.at - at} ms, before its 3500 ms`);
      assert.equal(await pipe.readyCount(), 0);
    }, conn);
  });

  test(`FIFO: messages of one group are worked on one at a time and in order; groups run side by side (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const pipe = await open({ queue: `${q('fifo')}.fifo`, prefetch: 20, wait_time_seconds: 1 });
      const sent: Record<string, string[]> = { A: [], B: [] };
      for (let i = 0; i < 16; i++) {
        const g = i % 2 === 0 ? 'A' : 'B';
        sent[g]!.push(await publish(pipe, { headers: { MessageGroupId: [g] }, body: Buffer.from(`${g}${i}`) }));
      }
      const got: Record<string, string[]> = { A: [], B: [] };
      const active = new Map<string, number>();
      let overlap = 0;
      let bothAtOnce = false;
      await pipe.consume((d) => {
        const g = d.headers['MessageGroupId']?.[0] ?? '?';
        active.set(g, (active.get(g) ?? 0) + 1);
        if ((active.get(g) ?? 0) > 1) overlap++;
        if ((active.get('A') ?? 0) > 0 && (active.get('B') ?? 0) > 0) bothAtOnce = true;
        got[g]?.push(d.id);
        setTimeout(() => {
          active.set(g, (active.get(g) ?? 1) - 1);
          track(d.ack());
        }, 30);
      });
      await waitFor('all 16', () => got['A']!.length + got['B']!.length === 16, 30_000);
      await pipe.cancel();
      assert.equal(overlap, 0, 'no two messages of one group at once');
      assert.deepEqual(got['A'], sent['A']);
      assert.deepEqual(got['B'], sent['B']);
      assert.ok(bothAtOnce, 'the two groups were worked on side by side');
    });
  });

  test(`FIFO: a retried message is not overtaken by the one behind it in its group (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const pipe = await open({ queue: `${q('fifo-retry')}.fifo`, wait_time_seconds: 1 });
      const first = await publish(pipe, { headers: { MessageGroupId: ['g'] } });
      const second = await publish(pipe, { headers: { MessageGroupId: ['g'] } });
      const order: string[] = [];
      await pipe.consume((d) => {
        order.push(d.id);
        if (order.length === 1) track(retryLater(d, 1000));
        else track(d.ack());
      });
      await waitFor('three deliveries', () => order.length === 3);
      await pipe.cancel();
      assert.deepEqual(order, [first, first, second]);
    });
  });

  test(`a FIFO push with a delay is refused with E_DELAY_UNSUPPORTED (SQS FIFO queues take none) (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const pipe = await open({ queue: `${q('fifo-delay')}.fifo` });
      await assert.rejects(publish(pipe, { delayMs: 1000 }), (err: unknown) => (err as { code?: string }).code === 'E_DELAY_UNSUPPORTED');
    });
  });

  test(`RoadRunner's attributes decode: a message as RoadRunner's sqs driver sends it is the job it describes (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const name = q('rr');
      const pipe = await open({ queue: name });
      const queueUrl = await queueUrlOf(name);
      await emu.client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: '{"order":42}',
          MessageAttributes: {
            rr_id: { DataType: 'String', StringValue: 'rr-1' },
            rr_job: { DataType: 'String', StringValue: 'App\\Jobs\\Ship' },
            rr_delay: { DataType: 'String', StringValue: '0' },
            rr_headers: { DataType: 'Binary', BinaryValue: Buffer.from('{"tenant":["acme"],"multi":["a","b"]}') },
            rr_priority: { DataType: 'Number', StringValue: '3' },
            rr_auto_ack: { DataType: 'String', StringValue: 'false' },
          },
        }),
      );
      const got: Delivery[] = [];
      await pipe.consume((d) => {
        got.push(d);
        track(d.ack());
      });
      await waitFor('the RoadRunner message', () => got.length === 1);
      await pipe.cancel();
      const d = got[0]!;
      assert.equal(d.id, 'rr-1');
      assert.equal(d.job, 'App\\Jobs\\Ship');
      assert.equal(d.body.toString(), '{"order":42}');
      assert.equal(d.priority, 3);
      assert.deepEqual(d.headers['tenant'], ['acme']);
      assert.deepEqual(d.headers['multi'], ['a', 'b']);
      assert.equal(d.attempt, 1);
      assert.equal(d.invalid, undefined);
      for (const k of ['rr_id', 'rr_job', 'rr_delay', 'rr_headers', 'rr_priority', 'rr_auto_ack']) assert.equal(d.headers[k], undefined, `${k} is not a plain header`);
    });
  });

  test(`jobrunner publishes RoadRunner's attributes with RoadRunner's types (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const name = q('rr-out');
      const pipe = await open({ queue: name });
      const id = await publish(pipe, { job: 'Ship', headers: { tenant: ['acme'] }, priority: 5, delayMs: 0 });
      const [m] = await emu.receive(name, 1, 2);
      assert.ok(m);
      const a = m.MessageAttributes ?? {};
      assert.deepEqual(
        Object.fromEntries(['rr_id', 'rr_job', 'rr_delay', 'rr_headers', 'rr_priority', 'rr_auto_ack'].map((k) => [k, a[k]?.DataType])),
        { rr_id: 'String', rr_job: 'String', rr_delay: 'String', rr_headers: 'Binary', rr_priority: 'Number', rr_auto_ack: 'String' },
      );
      assert.equal(a['rr_id']?.StringValue, id);
      assert.equal(a['rr_auto_ack']?.StringValue, 'false');
      assert.equal(a['rr_delay']?.StringValue, '0');
      assert.ok(Object.keys(a).length <= 10, 'SQS allows 10 message attributes');
    });
  });

  test(`a third-party message without rr_* attributes is a job: id from the MessageId, name from the pipeline, attributes as headers (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const name = q('third');
      const pipe = await open({ queue: name }, { job: 'Imported' });
      const sent = await emu.client.send(
        new SendMessageCommand({
          QueueUrl: await queueUrlOf(name),
          MessageBody: 'plain text',
          MessageAttributes: { source: { DataType: 'String', StringValue: 'billing' }, count: { DataType: 'Number', StringValue: '12' }, blob: { DataType: 'Binary', BinaryValue: Buffer.from('bytes') } },
        }),
      );
      const got: Delivery[] = [];
      await pipe.consume((d) => {
        got.push(d);
        track(d.ack());
      });
      await waitFor('the third-party message', () => got.length === 1);
      await pipe.cancel();
      const d = got[0]!;
      assert.equal(d.id, sent.MessageId);
      assert.equal(d.messageId, sent.MessageId);
      assert.equal(d.job, 'Imported');
      assert.equal(d.body.toString(), 'plain text');
      assert.deepEqual(d.headers['source'], ['billing']);
      assert.deepEqual(d.headers['count'], ['12']);
      assert.deepEqual(d.headers['blob'], ['bytes']);
      assert.equal(d.attempt, 1);
    });
  });

  test(`binary and empty bodies round-trip (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open) => {
      const pipe = await open({ queue: q('binary') });
      const bodies = [Buffer.from([0, 1, 2, 255, 254, 0x0b]), Buffer.alloc(0), Buffer.from('ünïcödé ✓')];
      const ids: string[] = [];
      for (const body of bodies) ids.push(await publish(pipe, { body, contentType: 'application/octet-stream' }));
      const got = new Map<string, Buffer>();
      await pipe.consume((d) => {
        got.set(d.id, d.body);
        track(d.ack());
      });
      await waitFor('three bodies', () => got.size === 3);
      await pipe.cancel();
      ids.forEach((id, i) => assert.ok(got.get(id)?.equals(bodies[i]!), `body ${i}`));
    });
  });

  test(`an empty queue is watched by one long poll; messages bring the other polls back (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open, conn) => {
      let polling = 0;
      let most = 0;
      const send = conn.client.send.bind(conn.client);
      conn.client.send = ((command: object, ...rest: unknown[]) => {
        const p = (send as (...a: unknown[]) => Promise<unknown>)(command, ...rest);
        if (command.constructor.name !== 'ReceiveMessageCommand') return p;
        polling++;
        most = Math.max(most, polling);
        return p.finally(() => polling--);
      }) as typeof conn.client.send;
      const pipe = await open({ queue: q('idle'), prefetch: 100, wait_time_seconds: 1 });
      const acked = new Set<string>();
      await pipe.consume((d) => track(d.ack().then(() => acked.add(d.id))));
      // the first round finds nothing; from then on one poll at a time
      await sleep(2500);
      most = polling;
      await sleep(2500);
      assert.equal(most, 1, 'one poll while the queue is empty');
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) ids.add(await publish(pipe, {}));
      await waitFor('all 40', () => acked.size === 40);
      await pipe.cancel();
      assert.ok(most > 1, `the polls came back (${most} at once)`);
      assert.deepEqual([...acked].sort(), [...ids].sort());
    });
  });

  test(`prefetch bounds the messages held; acks of one loop pass go out as one DeleteMessageBatch (${EMULATOR})`, { timeout: T }, async () => {
    await withPipes(async (open, conn) => {
      const calls: string[] = [];
      const send = conn.client.send.bind(conn.client);
      conn.client.send = ((command: object, ...rest: unknown[]) => {
        calls.push(command.constructor.name);
        return (send as (...a: unknown[]) => Promise<unknown>)(command, ...rest);
      }) as typeof conn.client.send;
      const name = q('prefetch');
      const pipe = await open({ queue: name, prefetch: 7, wait_time_seconds: 1 });
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) ids.add(await publish(pipe, {}));
      const held: Delivery[] = [];
      await pipe.consume((d) => held.push(d));
      await waitFor('seven held', () => held.length === 7);
      await sleep(1500);
      assert.equal(held.length, 7, 'no more than prefetch held');
      const attrs = await emu.attributes(name);
      assert.equal(attrs['ApproximateNumberOfMessagesNotVisible'], '7');
      const acked = new Set<string>();
      // settle the rest as they come
      const rest = held.splice(0);
      await pipe.cancel();
      calls.length = 0;
      await Promise.all(rest.map((d) => d.ack().then(() => acked.add(d.id))));
      assert.deepEqual(calls, ['DeleteMessageBatchCommand'], 'seven acks in one loop pass: one request');
      await pipe.consume((d) => track(d.ack().then(() => acked.add(d.id))));
      await waitFor('all 20 acked', () => acked.size === 20);
      await pipe.cancel();
      assert.deepEqual([...acked].sort(), [...ids].sort());
    });
  });
});

async function queueUrlOf(name: string): Promise<string> {
  const { GetQueueUrlCommand } = await import('@aws-sdk/client-sqs');
  return (await emu.client.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl as string;
}
