// Test-only RabbitMQ setup for amqp1 tests: queues and dead-letter topology are created over AMQP 0-9-1
// (amqplib) on the same broker, because AMQP 1.0 cannot declare on RabbitMQ 3.x; and a wrapper that
// makes a pipeline's declare() wait for that setup, so the shared conformance suite can stay sync.

import { connect } from 'amqplib';
import type { PipelineConfig } from '../../src/config/types.js';
import type { Amqp1PipelineOptions } from '../../src/drivers/amqp1/options.js';
import type { BrokerPipeline, DriverConnection } from '../../src/drivers/driver.js';

export type Amqp1PipelineConfig = PipelineConfig<Amqp1PipelineOptions>;

/** An amqp1 PipelineConfig with test defaults. */
export function amqp1Pipeline(name: string, over: Partial<Amqp1PipelineOptions> & { requeueOnFail?: boolean; redialTimeoutMs?: number } = {}): Amqp1PipelineConfig {
  const { requeueOnFail = false, redialTimeoutMs = 10_000, ...options } = over;
  return {
    name,
    command: ['/bin/true'],
    env: {},
    pool: { numWorkers: 1, maxConcurrency: 1, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 5000, destroyTimeoutMs: 5000, execTtlMs: 0, maxWorkerMemoryMb: 0 },
    consume: true,
    driver: 'amqp1',
    requeueOnFail,
    redialTimeoutMs,
    options: { queue: name, prefetch: 10, priority: 0, durable: true, broker: 'auto', ...options },
  };
}

/** The AMQP 0-9-1 URL of the broker behind an amqp1 URL (same host and port on both RabbitMQs). */
export function amqp091UrlFor(amqp1Url: string): string {
  return amqp1Url;
}

/** Declares queues over AMQP 0-9-1 and deletes them at the end. */
export class RabbitSetup {
  private readonly queues = new Set<string>();
  constructor(private readonly url: string) {}

  async queue(name: string, args: Record<string, unknown> = {}): Promise<void> {
    const c = await connect(this.url);
    try {
      const ch = await c.createChannel();
      await ch.assertQueue(name, { durable: true, arguments: args });
      this.queues.add(name);
    } finally {
      await c.close();
    }
  }

  /** A queue whose rejected messages go to `dlq` (through the default exchange). */
  async queueWithDlq(name: string, dlq: string): Promise<void> {
    await this.queue(name, { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dlq });
  }

  /** The TTL queue amqp1 publishes a delayed message to (what amqp091 or an operator declares on 3.x). */
  async delayQueue(queue: string, delayMs: number): Promise<void> {
    await this.queue(`jobrunner.delay.${queue}.${delayMs}`, {
      'x-message-ttl': delayMs,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': queue,
      'x-expires': Math.max(delayMs * 2, delayMs + 60_000),
    });
  }

  /** The broker's major version (from the AMQP 0-9-1 server properties). */
  async major(): Promise<number> {
    const c = await connect(this.url);
    try {
      const props = (c as unknown as { connection: { serverProperties?: { version?: unknown } } }).connection.serverProperties;
      return Number(String(props?.version ?? '0').split('.')[0]);
    } finally {
      await c.close();
    }
  }

  /** Remembers a queue created by someone else (the driver) so cleanup deletes it. */
  track(name: string): void {
    this.queues.add(name);
  }

  async messageCount(name: string): Promise<number> {
    const c = await connect(this.url);
    try {
      const ch = await c.createChannel();
      return (await ch.checkQueue(name)).messageCount;
    } finally {
      await c.close();
    }
  }

  async cleanup(): Promise<void> {
    const c = await connect(this.url);
    try {
      for (const q of this.queues) {
        const ch = await c.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteQueue(q).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
    } finally {
      await c.close().catch(() => undefined);
    }
  }
}

/** A DriverConnection whose pipelines run `before(config)` at the start of declare(). */
export function withSetup(conn: DriverConnection, before: (config: PipelineConfig) => Promise<void>): DriverConnection {
  const wrapped: DriverConnection = {
    driver: conn.driver,
    start: (signal) => conn.start(signal),
    status: () => conn.status(),
    stop: () => conn.stop(),
    on: (event, listener) => {
      conn.on(event, listener);
      return wrapped as never;
    },
    off: (event, listener) => {
      conn.off(event, listener);
      return wrapped as never;
    },
    pipeline(config) {
      const p = conn.pipeline(config);
      const setup = before(config);
      setup.catch(() => undefined);
      const pipe: BrokerPipeline = {
        name: p.name,
        queue: p.queue,
        declare: async () => {
          await setup;
          await p.declare();
        },
        consume: (f) => p.consume(f),
        cancel: () => p.cancel(),
        publish: (j) => p.publish(j),
        capabilities: () => p.capabilities(),
        ...(p.checkDelay ? { checkDelay: (ms: number) => p.checkDelay!(ms) } : {}),
        readyCount: () => p.readyCount(),
        close: () => p.close(),
      };
      return pipe;
    },
  };
  return wrapped;
}
