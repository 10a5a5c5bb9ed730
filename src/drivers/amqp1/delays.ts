// amqp1 delays, by broker: Service Bus schedules (x-opt-scheduled-enqueue-time), RabbitMQ 4 gets a
// delay queue declared through its management node, RabbitMQ 3.x can only use delay queues that exist
// (checked at start through BrokerPipeline.checkDelay); any other broker has none. Which broker can do
// what is in capabilities.ts; the start-up check that reads it is in src/pipelines/.

import type { Amqp1PipelineOptions } from './options.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { delayQueueName } from '../rabbitmq-delays.js';
import type { BrokerKind } from './broker.js';
import type { LiveConnection } from './live.js';
import { SCHEDULED_ENQUEUE_TIME } from './message.js';
import { passiveCheck } from './receiver.js';
import { declareDelayQueue } from './topology.js';

/** One pipeline's delays. */
export class Delays {
  /** delay queues declared on this connection lately (re-declared every 30 s, see declareDelayQueue) */
  private readonly declared = new Set<string>();

  constructor(
    private readonly pipeline: string,
    private readonly options: Amqp1PipelineOptions,
  ) {}

  /** a new connection: declare again */
  reset(): void {
    this.declared.clear();
  }

  /**
   * Where a message delayed by `delayMs` goes (`address` unchanged, or its delay queue), and the
   * message annotations that delay it.
   */
  async route(live: LiveConnection, kind: BrokerKind, address: string, delayMs: number): Promise<{ address: string; annotations: Record<string, unknown> }> {
    if (kind === 'servicebus') return { address, annotations: { [SCHEDULED_ENQUEUE_TIME]: new Date(Date.now() + delayMs) } };
    if (kind === 'rabbitmq4' || kind === 'rabbitmq3') return { address: await this.delayAddress(live, kind, delayMs), annotations: {} };
    throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.pipeline}: the broker (generic AMQP 1.0) cannot delay messages; publish without delay`);
  }

  /** RabbitMQ 3.x: is the delay queue for `delayMs` there? (E_DELAY_UNSUPPORTED naming it when not) */
  async check(live: LiveConnection, delayMs: number): Promise<void> {
    const name = delayQueueName(this.options.queue, delayMs);
    try {
      await passiveCheck(live, `/amq/queue/${name}`);
    } catch (err) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `the delay queue ${name}, which RabbitMQ 3.x cannot declare over AMQP 1.0, is missing (${errorMessage(err)}); create it (docs/drivers/amqp1-rabbitmq3.md)`, { cause: err });
    }
  }

  private async delayAddress(live: LiveConnection, kind: BrokerKind, delayMs: number): Promise<string> {
    if (this.options.address !== undefined) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.pipeline}: delays need a queue or exchange, not a raw address`);
    }
    if (kind === 'rabbitmq4') {
      const name = await declareDelayQueue(live.rabbitManagement(), this.options, delayMs, this.declared);
      return `/queues/${encodeURIComponent(name)}`;
    }
    // RabbitMQ 3.x over AMQP 1.0 cannot declare a queue with arguments: use one that exists
    return `/amq/queue/${delayQueueName(this.options.queue, delayMs)}`;
  }
}
