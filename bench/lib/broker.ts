// Broker helpers for the benchmark: declare, fill a queue with persistent 100-byte JSON messages, count
// what is ready, publish at a fixed rate. Over AMQP 0-9-1 (amqplib) on both RabbitMQ versions (the amqp091
// and amqp1 targets), and over NATS JetStream (./nats-broker.ts) for the nats target.

import amqplib, { type ChannelModel, type ConfirmChannel, type Channel } from 'amqplib';

export const MESSAGE_BYTES = 100;

/** A JSON body of exactly MESSAGE_BYTES bytes: {"n":…,"pad":"xx…"} (ts set for latency runs). */
export function body(n: number, ts?: number): Buffer {
  const head = ts === undefined ? `{"n":${n},"pad":"` : `{"n":${n},"ts":${ts.toFixed(3)},"pad":"`;
  const pad = Math.max(0, MESSAGE_BYTES - head.length - 2);
  return Buffer.from(head + 'x'.repeat(pad) + '"}', 'utf8');
}

/** what the benchmark needs of a broker, whatever its protocol */
export interface BenchBroker {
  /** a fresh, empty queue (for NATS: a stream and the durable consumer the driver would create) */
  declare(queue: string): Promise<void>;
  delete(queue: string): Promise<void>;
  /** messages waiting to be delivered, and (where the broker tells) delivered but not yet settled */
  count(queue: string): Promise<{ ready: number; unacked?: number }>;
  fill(queue: string, n: number): Promise<void>;
  paced(queue: string, count: number, rate: number, stamped: boolean): Promise<void>;
  close(): Promise<void>;
}

/** publishes `count` messages at `rate`/s through `send`, each carrying its publish time when stamped */
export async function pacedSend(count: number, rate: number, stamped: boolean, send: (n: number, data: Buffer) => void): Promise<void> {
  const origin = performance.timeOrigin;
  const start = performance.now();
  const interval = 1000 / rate;
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor((performance.now() - start) / interval) + 1);
    for (; sent < due; sent++) send(sent, body(sent, stamped ? origin + performance.now() : undefined));
    const next = start + sent * interval - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, next)));
  }
}

export class Broker implements BenchBroker {
  private constructor(
    private readonly conn: ChannelModel,
    private readonly pub: ConfirmChannel,
    private readonly poll: Channel,
  ) {}

  static async open(url: string): Promise<Broker> {
    const conn = await amqplib.connect(url);
    // a broker restart (shared brokers) surfaces as a failed call; an 'error' event must not crash the run
    conn.on('error', () => undefined);
    const pub = await conn.createConfirmChannel();
    const poll = await conn.createChannel();
    return new Broker(conn, pub, poll);
  }

  async declare(queue: string): Promise<void> {
    await this.poll.assertQueue(queue, { durable: true });
    await this.poll.purgeQueue(queue);
  }

  async delete(queue: string): Promise<void> {
    await this.poll.deleteQueue(queue).catch(() => undefined);
  }

  /** ready messages and consumers of a queue (a passive declare) */
  async count(queue: string): Promise<{ ready: number; consumers: number }> {
    const r = await this.poll.checkQueue(queue);
    return { ready: r.messageCount, consumers: r.consumerCount };
  }

  /** publishes n persistent messages with publisher confirms, a window at a time */
  async fill(queue: string, n: number): Promise<void> {
    const window = 5000;
    for (let i = 0; i < n; i += window) {
      const end = Math.min(n, i + window);
      for (let k = i; k < end; k++) {
        this.pub.publish('', queue, body(k), { persistent: true, contentType: 'application/json', messageId: `m${k}` });
      }
      await this.pub.waitForConfirms();
    }
  }

  /** publishes `count` messages at `rate`/s, each carrying its publish time (epoch ms, fractional) */
  async paced(queue: string, count: number, rate: number, stamped: boolean): Promise<void> {
    await pacedSend(count, rate, stamped, (n, data) => {
      this.pub.publish('', queue, data, { persistent: true, contentType: 'application/json', messageId: `l${n}` });
    });
    await this.pub.waitForConfirms();
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}
