// What an amqp091 pipeline declares and where it publishes: exchange, queue, binding, and the per-delay
// TTL queues that dead-letter back (their scheme: ../rabbitmq-delays.ts). Pure: it computes names and arguments, amqplib calls live in
// pipeline.ts.

import { delayQueueArguments, delayQueueName as rabbitDelayQueueName } from '../rabbitmq-delays.js';
import type { Amqp091PipelineOptions } from './options.js';

/** Where a job for this pipeline is published. */
export function publishTarget(o: Amqp091PipelineOptions): { exchange: string; routingKey: string } {
  // the default exchange routes by queue name
  if (o.exchange === '') return { exchange: '', routingKey: o.queue };
  return { exchange: o.exchange, routingKey: o.routingKey };
}

/**
 * Arguments of the binding. A headers exchange matches on the binding's arguments: like RoadRunner,
 * they come from queue_headers (x-match plus the keys to match; RabbitMQ ignores other x- keys there).
 */
export function bindArgs(o: Amqp091PipelineOptions): Record<string, unknown> | undefined {
  return o.exchangeType === 'headers' ? { ...o.queueHeaders } : undefined;
}

/**
 * Headers a published message must carry to reach this pipeline's queue through a headers exchange:
 * queue_headers' keys that are not x- arguments.
 */
export function matchHeaders(o: Amqp091PipelineOptions): Record<string, unknown> {
  if (o.exchangeType !== 'headers' || o.exchange === '') return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o.queueHeaders)) if (!k.startsWith('x-')) out[k] = v;
  return out;
}

/** This pipeline's delay queue for one delay (src/drivers/rabbitmq-delays.ts). */
export function delayQueueName(o: Amqp091PipelineOptions, delayMs: number): string {
  return rabbitDelayQueueName(o.queue, delayMs);
}

/**
 * The TTL queue for one delay: messages expire after delayMs and are dead-lettered back. Direct and
 * topic exchanges get them back through the pipeline's exchange and routing key; fanout and headers
 * exchanges (which would copy them to every bound queue) and the default exchange get them through the
 * default exchange straight to this pipeline's queue.
 */
export function delayQueueArgs(o: Amqp091PipelineOptions, delayMs: number): Record<string, unknown> {
  return {
    ...delayQueueArguments({ queue: o.queue, exchange: o.exchange, routingKey: o.routingKey, routesByKey: o.exchangeType === 'direct' || o.exchangeType === 'topic' }, delayMs),
  };
}
