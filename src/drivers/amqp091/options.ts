// amqp091's option and connection types and their normalisers: RoadRunner's amqp driver keys (flat, and
// the nested `version: 2` form) as Amqp091PipelineOptions. Defaults come from the schema fragment
// (./schema.json, filled in by ajv): read here without a second copy.

import { randomBytes } from 'node:crypto';
import type { PipelineOptionsBase, TlsConfig } from '../../config/types.js';
import { aliased, boolOf, filled, msOf, numOf, obj, strOf, tls, urls, type Obj } from '../../config/values.js';
import type { NormalizedOptions } from '../driver.js';

export interface Amqp091ConnectionConfig {
  /** one or more URLs (a cluster), tried in turn; contain passwords: never log them unredacted */
  urls: string[];
  tls?: TlsConfig;
}

export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

/** amqp091 pipeline options: RoadRunner's amqp driver keys, with RoadRunner's defaults. */
export interface Amqp091PipelineOptions extends PipelineOptionsBase {
  queue: string;
  /** '' is the default exchange: publish straight to the queue, bind nothing */
  exchange: string;
  exchangeType: ExchangeType;
  exchangeDurable: boolean;
  exchangeAutoDelete: boolean;
  exchangeDeclare: boolean;
  routingKey: string;
  prefetch: number;
  /** default priority of pushed jobs; also x-max-priority when > 0 ... see docs/drivers/amqp091.md */
  priority: number;
  durable: boolean;
  queueAutoDelete: boolean;
  exclusive: boolean;
  consumerId: string;
  deleteQueueOnStop: boolean;
  multipleAck: boolean;
  queueHeaders: Record<string, unknown>;
  queueDeclare: boolean;
}

function consumerId(o: Obj, key: string, pipeline: string): string {
  const id = strOf(o, key);
  return id !== '' ? id : `jobrunner-${pipeline}-${randomBytes(3).toString('hex')}`;
}

export function amqp091Section(full: Obj): Amqp091ConnectionConfig {
  const t = tls(full.tls);
  return { urls: urls(filled(full, 'addr')), ...(t ? { tls: t } : {}) };
}

export function amqp091Options(name: string, raw: Obj, full: Obj): NormalizedOptions<Amqp091PipelineOptions> {
  const common = { prefetch: numOf(full, 'prefetch'), priority: numOf(full, 'priority') };
  const redialTimeoutMs = msOf(full, 'redial_timeout');
  if (String(full.version) === '2') {
    const ex = obj(full.exchange);
    const q = obj(full.queue);
    return {
      redialTimeoutMs,
      requeueOnFail: boolOf(q, 'requeue_on_fail'),
      options: {
        ...common,
        queue: strOf(q, 'name'),
        exchange: strOf(ex, 'name'),
        exchangeType: strOf(ex, 'type') as ExchangeType,
        exchangeDurable: boolOf(ex, 'durable'),
        exchangeAutoDelete: boolOf(ex, 'auto_delete'),
        exchangeDeclare: boolOf(ex, 'declare'),
        routingKey: strOf(q, 'routing_key'),
        durable: boolOf(q, 'durable'),
        queueAutoDelete: boolOf(q, 'auto_delete'),
        exclusive: boolOf(q, 'exclusive'),
        consumerId: consumerId(q, 'consumer_id', name),
        deleteQueueOnStop: boolOf(q, 'delete_on_stop'),
        multipleAck: boolOf(q, 'multiple_ack'),
        queueHeaders: { ...obj(filled(q, 'headers')) },
        queueDeclare: boolOf(q, 'declare'),
      },
    };
  }
  // exchange_declare / queue_declare have no default of their own: `declare` is theirs
  const declare = boolOf(full, 'declare');
  return {
    redialTimeoutMs,
    requeueOnFail: boolOf(full, 'requeue_on_fail'),
    options: {
      ...common,
      queue: strOf(full, 'queue'),
      exchange: strOf(full, 'exchange'),
      exchangeType: strOf(full, 'exchange_type') as ExchangeType,
      exchangeDurable: boolOf(full, 'exchange_durable'),
      exchangeAutoDelete: aliased(raw, full, 'exchange_auto_delete', 'exchange_auto_deleted'),
      exchangeDeclare: raw.exchange_declare !== undefined ? boolOf(full, 'exchange_declare') : declare,
      routingKey: strOf(full, 'routing_key'),
      durable: boolOf(full, 'durable'),
      queueAutoDelete: aliased(raw, full, 'queue_auto_delete', 'queue_auto_deleted'),
      exclusive: boolOf(full, 'exclusive'),
      consumerId: consumerId(full, 'consumer_id', name),
      deleteQueueOnStop: boolOf(full, 'delete_queue_on_stop'),
      multipleAck: boolOf(full, 'multiple_ack'),
      queueHeaders: { ...obj(filled(full, 'queue_headers')) },
      queueDeclare: raw.queue_declare !== undefined ? boolOf(full, 'queue_declare') : declare,
    },
  };
}
