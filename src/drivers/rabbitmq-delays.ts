// RabbitMQ delay queues, the one scheme both AMQP drivers use (amqp091 always, amqp1 on RabbitMQ 3.x
// and 4.x): a queue per delay, `jobrunner.delay.<queue>.<ms>`, whose messages expire after the delay
// and are dead-lettered back to the pipeline. No broker plugin needed. Pure: names and arguments; each
// driver declares them its own way (amqplib, RabbitMQ 4's management node) or expects them to exist.

/** The delay queue of a pipeline's queue for one delay. */
export function delayQueueName(queue: string, delayMs: number): string {
  return `jobrunner.delay.${queue}.${Math.round(delayMs)}`;
}

/** Where a pipeline's messages go back to when their delay is over. */
export interface DelayReturn {
  queue: string;
  /** '' for the default exchange */
  exchange: string;
  routingKey: string;
  /**
   * The exchange routes by routing key (direct, topic): messages go back through it. A fanout or
   * headers exchange would copy them to every bound queue, so they go straight to the queue instead.
   */
  routesByKey: boolean;
}

/** The arguments of a delay queue, as numbers and strings (each driver encodes them for its client). */
export interface DelayQueueArguments {
  'x-message-ttl': number;
  'x-dead-letter-exchange': string;
  'x-dead-letter-routing-key': string;
  /** lets an idle delay queue go away, long enough after the TTL that messages always leave it first */
  'x-expires': number;
}

export function delayQueueArguments(back: DelayReturn, delayMs: number): DelayQueueArguments {
  const ttl = Math.max(1, Math.round(delayMs));
  const viaExchange = back.exchange !== '' && back.routesByKey;
  return {
    'x-message-ttl': ttl,
    'x-dead-letter-exchange': viaExchange ? back.exchange : '',
    'x-dead-letter-routing-key': viaExchange ? back.routingKey : back.queue,
    'x-expires': ttl + Math.max(ttl, 60_000),
  };
}
