// RabbitMQ 4 topology over AMQP 1.0: queues, exchanges, bindings and delay queues declared through
// the HTTP-over-AMQP management node (`/management`). RabbitMQ 3.x's plugin has no such node, so on
// 3.x amqp1 declares nothing (see docs/drivers/amqp1-rabbitmq3.md).

import rhea from 'rhea';
import type { Amqp1PipelineOptions } from './options.js';
import { JobrunnerError, type ErrorCode } from '../../shared/errors.js';
import { delayQueueArguments, delayQueueName } from '../rabbitmq-delays.js';
import type { ManagementLink, ManagementResponse } from './management.js';

const ok = (r: ManagementResponse): boolean => r.status >= 200 && r.status < 300;

/** Declares the queue (and, with `exchange`, a direct exchange and the binding). */
export async function declareRabbitTopology(
  mgmt: ManagementLink,
  options: Pick<Amqp1PipelineOptions, 'queue' | 'exchange' | 'routingKey' | 'durable'>,
): Promise<void> {
  await putOrExisting(mgmt, `/queues/${encodeURIComponent(options.queue)}`, {
    durable: options.durable,
    exclusive: false,
    auto_delete: false,
    arguments: {},
  });
  const exchange = options.exchange ?? '';
  if (exchange === '' || exchange.startsWith('amq.')) {
    if (exchange === '') return;
  } else {
    await putOrExisting(mgmt, `/exchanges/${encodeURIComponent(exchange)}`, { type: 'direct', durable: options.durable, auto_delete: false, internal: false, arguments: {} });
  }
  const res = await mgmt.request({
    subject: 'POST',
    to: '/bindings',
    body: { source: exchange, destination_queue: options.queue, binding_key: options.routingKey ?? '', arguments: {} },
  });
  if (!ok(res)) throw failure('E_BROKER_DECLARE', `binding ${options.queue} to ${exchange}`, res);
}

/**
 * Declares `jobrunner.delay.<queue>.<ms>`: messages wait there for `ms` (x-message-ttl), then dead-letter
 * back to the pipeline's exchange and routing key (or its queue). RabbitMQ 4.0 ignores
 * x-opt-delivery-time, so this is how amqp1 delays on RabbitMQ without a plugin (the amqp091 scheme).
 * `recent` remembers declarations for 30 s; re-declaring keeps x-expires from removing a queue in use.
 */
export async function declareDelayQueue(
  mgmt: ManagementLink,
  options: Pick<Amqp1PipelineOptions, 'queue' | 'exchange' | 'routingKey'>,
  delayMs: number,
  recent: Set<string>,
): Promise<string> {
  const name = delayQueueName(options.queue, delayMs);
  const stamp = `${name}@${Math.floor(Date.now() / 30_000)}`;
  if (recent.has(stamp)) return name;
  // amqp1 publishes to the exchange by its address with the routing key: the exchange routes by key
  const a = delayQueueArguments({ queue: options.queue, exchange: options.exchange ?? '', routingKey: options.routingKey ?? '', routesByKey: true }, delayMs);
  const args = { ...a, 'x-message-ttl': rhea.types.wrap_long(a['x-message-ttl']), 'x-expires': rhea.types.wrap_long(a['x-expires']) };
  const res = await mgmt.request({ subject: 'PUT', to: `/queues/${encodeURIComponent(name)}`, body: { durable: true, exclusive: false, auto_delete: false, arguments: args } }, 'E_PUBLISH');
  // 409: declared by someone else (the amqp091 driver) with other arguments: it exists, use it
  if (!ok(res) && res.status !== 409) throw failure('E_DELAY_UNSUPPORTED', `delay queue ${name}`, res);
  recent.add(stamp);
  return name;
}

/** Messages ready in the queue (GET /queues/Q message_count). */
export async function rabbitReadyCount(mgmt: ManagementLink, queue: string): Promise<number | undefined> {
  const res = await mgmt.request({ subject: 'GET', to: `/queues/${encodeURIComponent(queue)}`, body: null });
  if (!ok(res)) return undefined;
  const count = (res.body as { message_count?: unknown } | undefined)?.message_count;
  return typeof count === 'number' ? count : typeof count === 'bigint' ? Number(count) : undefined;
}

/** Deletes a queue (tests and delete-on-stop). */
export async function deleteRabbitQueue(mgmt: ManagementLink, queue: string): Promise<void> {
  const res = await mgmt.request({ subject: 'DELETE', to: `/queues/${encodeURIComponent(queue)}`, body: null });
  if (!ok(res) && res.status !== 404) throw failure('E_BROKER_DECLARE', `deleting queue ${queue}`, res);
}

async function putOrExisting(mgmt: ManagementLink, path: string, body: Record<string, unknown>): Promise<void> {
  const res = await mgmt.request({ subject: 'PUT', to: path, body });
  if (ok(res)) return;
  if (res.status === 409) {
    // exists with other properties (e.g. a quorum queue declared elsewhere): consume it as it is
    const check = await mgmt.request({ subject: 'GET', to: path, body: null });
    if (ok(check)) return;
  }
  throw failure('E_BROKER_DECLARE', path, res);
}

function failure(code: ErrorCode, what: string, res: ManagementResponse): JobrunnerError {
  const detail = typeof res.body === 'string' ? res.body : res.description ?? '';
  return new JobrunnerError(code, `RabbitMQ refused ${what}: ${res.status}${detail ? ` ${detail}` : ''}`);
}
