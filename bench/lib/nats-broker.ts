// The benchmark's broker side on NATS JetStream (the nats target): a "queue" is a stream holding one
// subject (the queue's name) with the durable pull consumer jobrunner's nats driver would create
// (explicit acks, no ack-pending limit, unlimited deliveries), so the raw client and jobrunner start from
// the same state. `ready` is the consumer's num_pending, `unacked` its num_ack_pending.

import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { body, pacedSend, type BenchBroker } from './broker.js';
import { NATS_CONSUMER } from './consumers.js';

/** the stream that holds a queue's subject (stream names take no dots) */
export function natsStream(queue: string): string {
  return `BENCH_${queue.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export class NatsBroker implements BenchBroker {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  static async open(url: string): Promise<NatsBroker> {
    const nc = await connect({ servers: url });
    return new NatsBroker(nc, jetstream(nc), await jetstreamManager(nc));
  }

  async declare(queue: string): Promise<void> {
    const stream = natsStream(queue);
    await this.jsm.streams.delete(stream).catch(() => undefined);
    await this.jsm.streams.add({ name: stream, subjects: [queue] });
    await this.jsm.consumers.add(stream, { durable_name: NATS_CONSUMER, ack_policy: AckPolicy.Explicit, max_ack_pending: -1, max_deliver: -1, filter_subject: queue });
  }

  async delete(queue: string): Promise<void> {
    const stream = natsStream(queue);
    await this.jsm.streams.delete(stream).catch(() => undefined);
    await this.jsm.streams.delete(`JOBRUNNER_DELAY_${stream}`).catch(() => undefined);
  }

  async count(queue: string): Promise<{ ready: number; unacked: number }> {
    const i = await this.jsm.consumers.info(natsStream(queue), NATS_CONSUMER);
    return { ready: i.num_pending, unacked: i.num_ack_pending };
  }

  /** publishes n messages, waiting for the stream's acks a window at a time */
  async fill(queue: string, n: number): Promise<void> {
    const window = 2000;
    for (let i = 0; i < n; i += window) {
      const acks: Promise<unknown>[] = [];
      for (let k = i; k < Math.min(n, i + window); k++) acks.push(this.js.publish(queue, body(k), { msgID: `m${k}` }));
      await Promise.all(acks);
    }
  }

  async paced(queue: string, count: number, rate: number, stamped: boolean): Promise<void> {
    const acks: Promise<unknown>[] = [];
    await pacedSend(count, rate, stamped, (n, data) => {
      acks.push(this.js.publish(queue, data, { msgID: `l${n}` }));
    });
    await Promise.all(acks);
  }

  async close(): Promise<void> {
    await this.nc.close().catch(() => undefined);
  }
}
