// amqp1's option and connection types and their normalisers. Defaults come from the schema fragment
// (via ajv); the fallbacks here only keep the types total.

import { hostname } from 'node:os';
import type { PipelineOptionsBase, TlsConfig } from '../../config/types.js';
import { bool, ms, num, obj, str, tls, urls, type Obj } from '../../config/values.js';
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
    idleTimeoutMs: ms(full.idle_timeout, 60_000),
    ...(t ? { tls: t } : {}),
  };
}

export function amqp1Options(full: Obj): NormalizedOptions<Amqp1PipelineOptions> {
  const options: Amqp1PipelineOptions = {
    queue: str(full.queue),
    prefetch: num(full.prefetch, 256),
    priority: num(full.priority, 10),
    durable: bool(full.durable, true),
    broker: str(full.broker, 'auto') as Amqp1Broker,
  };
  if (str(full.address) !== '') options.address = str(full.address);
  if (str(full.exchange) !== '') options.exchange = str(full.exchange);
  if (str(full.routing_key) !== '') options.routingKey = str(full.routing_key);
  return { options, requeueOnFail: bool(full.requeue_on_fail, false), redialTimeoutMs: ms(full.redial_timeout, 60_000) };
}

/** what crossref cannot leave to the schema */
export function amqp1CrossCheck(raw: Obj): { at: 'config'; message: string }[] {
  const c = obj(raw);
  return (c.queue ?? '') === '' && (c.address ?? '') === '' ? [{ at: 'config', message: 'an amqp1 pipeline needs `queue` or `address`' }] : [];
}
