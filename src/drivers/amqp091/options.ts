// amqp091's option and connection types and their normalisers: RoadRunner's amqp driver keys (flat, and
// the nested `version: 2` form) as Amqp091PipelineOptions. Defaults come from the schema fragment
// (schemas/drivers/amqp091.json via ajv); the fallbacks here only keep the types total.

import { randomBytes } from 'node:crypto';
import type { PipelineOptionsBase, TlsConfig } from '../../config/types.js';
import { aliased, bool, ms, num, obj, str, tls, urls, type Obj } from '../../config/values.js';
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

function consumerId(value: unknown, pipeline: string): string {
  const id = str(value);
  return id !== '' ? id : `jobrunner-${pipeline}-${randomBytes(3).toString('hex')}`;
}

export function amqp091Section(full: Obj): Amqp091ConnectionConfig {
  const t = tls(full.tls);
  return { urls: urls(full.addr ?? 'amqp://guest:guest@127.0.0.1:5672/'), ...(t ? { tls: t } : {}) };
}

export function amqp091Options(name: string, raw: Obj, full: Obj): NormalizedOptions<Amqp091PipelineOptions> {
  const common = { prefetch: num(full.prefetch, 256), priority: num(full.priority, 10) };
  const redialTimeoutMs = ms(full.redial_timeout, 60_000);
  if (String(full.version) === '2') {
    const ex = obj(full.exchange);
    const q = obj(full.queue);
    return {
      redialTimeoutMs,
      requeueOnFail: bool(q.requeue_on_fail, false),
      options: {
        ...common,
        queue: str(q.name),
        exchange: str(ex.name, 'amqp.default'),
        exchangeType: str(ex.type, 'direct') as ExchangeType,
        exchangeDurable: bool(ex.durable, false),
        exchangeAutoDelete: bool(ex.auto_delete, false),
        exchangeDeclare: bool(ex.declare, true),
        routingKey: str(q.routing_key),
        durable: bool(q.durable, false),
        queueAutoDelete: bool(q.auto_delete, false),
        exclusive: bool(q.exclusive, false),
        consumerId: consumerId(q.consumer_id, name),
        deleteQueueOnStop: bool(q.delete_on_stop, false),
        multipleAck: bool(q.multiple_ack, true),
        queueHeaders: { ...obj(q.headers) },
        queueDeclare: bool(q.declare, true),
      },
    };
  }
  const declare = bool(full.declare, true);
  return {
    redialTimeoutMs,
    requeueOnFail: bool(full.requeue_on_fail, false),
    options: {
      ...common,
      queue: str(full.queue),
      exchange: str(full.exchange, 'amqp.default'),
      exchangeType: str(full.exchange_type, 'direct') as ExchangeType,
      exchangeDurable: bool(full.exchange_durable, false),
      exchangeAutoDelete: aliased(raw, full, 'exchange_auto_delete', 'exchange_auto_deleted', false),
      exchangeDeclare: raw.exchange_declare !== undefined ? bool(full.exchange_declare, declare) : declare,
      routingKey: str(full.routing_key),
      durable: bool(full.durable, false),
      queueAutoDelete: aliased(raw, full, 'queue_auto_delete', 'queue_auto_deleted', false),
      exclusive: bool(full.exclusive, false),
      consumerId: consumerId(full.consumer_id, name),
      deleteQueueOnStop: bool(full.delete_queue_on_stop, false),
      multipleAck: bool(full.multiple_ack, true),
      queueHeaders: { ...obj(full.queue_headers) },
      queueDeclare: raw.queue_declare !== undefined ? bool(full.queue_declare, declare) : declare,
    },
  };
}
