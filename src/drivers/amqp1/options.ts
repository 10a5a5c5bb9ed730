// amqp1's option and connection types and their normalisers. Defaults come from the schema fragment
// (./schema.json, filled in by ajv): read here without a second copy; the keys without a default
// (queue, address, exchange, routing_key, container_id) are unset when empty.

import { hostname } from 'node:os';
import type { PipelineOptionsBase, TlsConfig } from '../../config/types.js';
import { boolOf, msOf, numOf, obj, str, strOf, tls, urls, type Obj } from '../../config/values.js';
import type { NormalizedOptions } from '../driver.js';

export interface Amqp1ConnectionConfig {
  urls: string[];
  containerId: string;
  tls?: TlsConfig;
  /** idle timeout sent in the open frame, ms (heartbeats at half of it) */
  idleTimeoutMs: number;
}

export type Amqp1Broker = 'auto' | 'rabbitmq' | 'servicebus' | 'generic';

export interface Amqp1PipelineOptions extends PipelineOptionsBase {
  queue: string;
  /** a full source/target address that overrides the derived one */
  address?: string;
  exchange?: string;
  routingKey?: string;
  prefetch: number;
  priority: number;
  durable: boolean;
  broker: Amqp1Broker;
}

export function amqp1Section(full: Obj): Amqp1ConnectionConfig {
  const t = tls(full.tls);
  return {
    urls: urls(full.addr),
    containerId: str(full.container_id) !== '' ? str(full.container_id) : `jobrunner-${hostname()}`,
    idleTimeoutMs: msOf(full, 'idle_timeout'),
    ...(t ? { tls: t } : {}),
  };
}

export function amqp1Options(full: Obj): NormalizedOptions<Amqp1PipelineOptions> {
  const options: Amqp1PipelineOptions = {
    queue: str(full.queue),
    prefetch: numOf(full, 'prefetch'),
    priority: numOf(full, 'priority'),
    durable: boolOf(full, 'durable'),
    broker: strOf(full, 'broker') as Amqp1Broker,
  };
  if (str(full.address) !== '') options.address = str(full.address);
  if (str(full.exchange) !== '') options.exchange = str(full.exchange);
  if (str(full.routing_key) !== '') options.routingKey = str(full.routing_key);
  return { options, requeueOnFail: boolOf(full, 'requeue_on_fail'), redialTimeoutMs: msOf(full, 'redial_timeout') };
}

/** what crossref cannot leave to the schema */
export function amqp1CrossCheck(raw: Obj): { at: 'config'; message: string }[] {
  const c = obj(raw);
  return (c.queue ?? '') === '' && (c.address ?? '') === '' ? [{ at: 'config', message: 'an amqp1 pipeline needs `queue` or `address`' }] : [];
}
