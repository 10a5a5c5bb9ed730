// Which AMQP 1.0 broker is on the other end, and what that means: the addresses to consume from and
// publish to, and how each settlement is expressed (RabbitMQ 3.x plugin, RabbitMQ 4.x native, Azure
// Service Bus, any other broker). Pure functions, no I/O: the connection feeds in the open frame.

import type { Amqp1Broker, Amqp1PipelineOptions } from './options.js';

export type BrokerKind = 'rabbitmq3' | 'rabbitmq4' | 'servicebus' | 'generic';

export interface BrokerInfo {
  kind: BrokerKind;
  product?: string;
  version?: string;
}

/**
 * Detects the broker from the peer's open frame properties (`product`, `version`) and the host name.
 * Service Bus sends no product property that we rely on; its host names end in servicebus.windows.net
 * (or the sovereign clouds' equivalents).
 */
export function detectBroker(properties: Record<string, unknown> | undefined, host: string): BrokerInfo {
  const product = stringProp(properties?.['product']);
  const version = stringProp(properties?.['version']);
  const info = (kind: BrokerKind): BrokerInfo => ({
    kind,
    ...(product === undefined ? {} : { product }),
    ...(version === undefined ? {} : { version }),
  });
  if (/\.servicebus\.(windows\.net|chinacloudapi\.cn|usgovcloudapi\.net|cloudapi\.de)$/i.test(host)) return info('servicebus');
  if (product !== undefined && /microsoft|service ?bus/i.test(product)) return info('servicebus');
  if (product !== undefined && /rabbitmq/i.test(product)) {
    const major = Number((version ?? '').split('.')[0]);
    return info(Number.isFinite(major) && major >= 4 ? 'rabbitmq4' : 'rabbitmq3');
  }
  return info('generic');
}

/** The pipeline's `broker:` setting applied over what was detected (rabbitmq keeps the detected major). */
export function effectiveBroker(setting: Amqp1Broker, detected: BrokerInfo): BrokerKind {
  switch (setting) {
    case 'auto':
      return detected.kind;
    case 'servicebus':
      return 'servicebus';
    case 'generic':
      return 'generic';
    case 'rabbitmq':
      return detected.kind === 'rabbitmq4' ? 'rabbitmq4' : 'rabbitmq3';
  }
}

/** The address the pipeline consumes from. */
export function consumeAddress(kind: BrokerKind, options: Pick<Amqp1PipelineOptions, 'queue' | 'address'>): string {
  if (options.address !== undefined && options.address !== '') return options.address;
  switch (kind) {
    case 'rabbitmq3':
      // never /queue/Q: the 3.x plugin would declare it (and fail on a queue declared with other arguments)
      return `/amq/queue/${options.queue}`;
    case 'rabbitmq4':
      return `/queues/${encodeURIComponent(options.queue)}`;
    case 'servicebus':
    case 'generic':
      return options.queue;
  }
}

/** The address the pipeline publishes to: the exchange and routing key when set, else the queue. */
export function publishAddress(
  kind: BrokerKind,
  options: Pick<Amqp1PipelineOptions, 'queue' | 'address' | 'exchange' | 'routingKey'>,
): string {
  if (options.address !== undefined && options.address !== '') return options.address;
  const exchange = options.exchange ?? '';
  const key = options.routingKey ?? '';
  switch (kind) {
    case 'rabbitmq3':
      if (exchange !== '') return key === '' ? `/exchange/${exchange}` : `/exchange/${exchange}/${key}`;
      return `/amq/queue/${options.queue}`;
    case 'rabbitmq4':
      if (exchange !== '') {
        const x = `/exchanges/${encodeURIComponent(exchange)}`;
        return key === '' ? x : `${x}/${encodeURIComponent(key)}`;
      }
      return `/queues/${encodeURIComponent(options.queue)}`;
    case 'servicebus':
    case 'generic':
      return options.queue;
  }
}


/** An AMQP 1.0 outcome as rhea's Delivery methods take it. */
export type Outcome =
  | { kind: 'accepted' }
  | { kind: 'released' }
  | { kind: 'modified'; deliveryFailed: boolean; undeliverableHere: boolean; annotations?: Record<string, unknown> }
  | { kind: 'rejected'; condition?: string; description?: string; info?: Record<string, unknown> };

/**
 * How reject(requeue, reason) is expressed on each broker:
 * - rabbitmq3: bare `released` (3.10 ends the session on any `modified`), `rejected` to dead-letter.
 * - rabbitmq4: `modified` delivery_failed=true for a counted requeue, `rejected` to dead-letter.
 * - servicebus: abandon = `modified` (delivery_failed, not undeliverable_here); dead-letter = `rejected`
 *   with com.microsoft:dead-letter and DeadLetterReason / DeadLetterErrorDescription.
 * - generic: `released` / `rejected`.
 */
export function rejectOutcome(kind: BrokerKind, requeue: boolean, reason?: string): Outcome {
  if (requeue) {
    if (kind === 'rabbitmq4' || kind === 'servicebus') return { kind: 'modified', deliveryFailed: true, undeliverableHere: false };
    return { kind: 'released' };
  }
  if (kind === 'servicebus') {
    const text = (reason ?? 'rejected by jobrunner').slice(0, 4096);
    return {
      kind: 'rejected',
      condition: 'com.microsoft:dead-letter',
      description: text,
      info: { DeadLetterReason: text.slice(0, 256), DeadLetterErrorDescription: text },
    };
  }
  // RabbitMQ keeps no error on a dead-lettered message; send the bare outcome the 3.x plugin knows best
  if (kind !== 'generic' || reason === undefined) return { kind: 'rejected' };
  return { kind: 'rejected', condition: 'amqp:internal-error', description: reason.slice(0, 1024) };
}

function stringProp(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}
