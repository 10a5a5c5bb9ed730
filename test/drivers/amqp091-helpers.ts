// Test helpers for the amqp091 driver: pipeline configs with RoadRunner's defaults, a raw amqplib
// connection for looking at the broker from the side, and cleanup of what a test declared.

import amqp, { type Channel, type ChannelModel } from 'amqplib';
import type { PipelineConfig } from '../../src/config/types.js';
import type { Amqp091PipelineOptions } from '../../src/drivers/amqp091/options.js';

export type Amqp091Pipeline = PipelineConfig<Amqp091PipelineOptions>;

/** driver options plus RoadRunner's pipeline-level keys, which tests set the same way */
export type TestAmqp091Options = Partial<Amqp091PipelineOptions> & { requeueOnFail?: boolean; redialTimeoutMs?: number };

/** A pipeline config: RoadRunner's amqp defaults, overridden. */
export function amqpPipeline(name: string, over: TestAmqp091Options = {}, extra: Partial<Pick<PipelineConfig, 'job'>> = {}): Amqp091Pipeline {
  const { requeueOnFail = false, redialTimeoutMs = 60_000, ...options } = over;
  const p: Amqp091Pipeline = {
    name,
    driver: 'amqp091',
    command: ['/bin/true'],
    env: {},
    pool: { numWorkers: 1, maxConcurrency: 1, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 1000, destroyTimeoutMs: 1000, execTtlMs: 0, maxWorkerMemoryMb: 0 },
    consume: true,
    requeueOnFail,
    redialTimeoutMs,
    options: {
      queue: name,
      exchange: 'amqp.default',
      exchangeType: 'direct',
      exchangeDurable: false,
      exchangeAutoDelete: false,
      exchangeDeclare: true,
      routingKey: '',
      prefetch: 10,
      priority: 10,
      durable: false,
      queueAutoDelete: false,
      exclusive: false,
      consumerId: '',
      deleteQueueOnStop: false,
      multipleAck: false,
      queueHeaders: {},
      queueDeclare: true,
      ...options,
    },
  };
  if (extra.job !== undefined) p.job = extra.job;
  return p;
}

/** A raw amqplib connection, to publish, get and inspect behind the driver's back. */
export class RawBroker {
  private constructor(
    readonly model: ChannelModel,
    readonly ch: Channel,
  ) {}

  static async open(url: string): Promise<RawBroker> {
    const model = await amqp.connect(url);
    model.on('error', () => undefined);
    const ch = await model.createChannel();
    ch.on('error', () => undefined);
    return new RawBroker(model, ch);
  }

  /** Runs fn on its own channel (a broker refusal closes only that channel). */
  async withChannel<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const ch = await this.model.createChannel();
    ch.on('error', () => undefined);
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async deleteQueues(names: Iterable<string>): Promise<void> {
    for (const q of names) await this.withChannel((ch) => ch.deleteQueue(q)).catch(() => undefined);
  }

  async deleteExchanges(names: Iterable<string>): Promise<void> {
    for (const x of names) await this.withChannel((ch) => ch.deleteExchange(x)).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.model.close().catch(() => undefined);
  }
}

/** Delay queues a test may have made for a queue (the conformance and amqp091 tests use these delays). */
export const TEST_DELAYS_MS = [500, 1000, 1500, 2000];
