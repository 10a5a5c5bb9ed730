// One amqp091 pipeline: declares its topology, consumes on its own channel (basic.qos prefetch, manual
// acks), publishes through the connection's shared confirm channel, delays through TTL queues. Every
// delivery is tied to the consumer channel it came on: once that channel is gone, settling it rejects
// with E_STALE_DELIVERY and never touches a newer channel (a delivery tag means nothing elsewhere).

import type { Channel, ConsumeMessage } from 'amqplib';
import type { PipelineConfig } from '../../config/types.js';
import type { Amqp091PipelineOptions } from './options.js';
import { RECONNECT_BACKOFF, backoffDelay } from '../../shared/backoff.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { DeliveryBase, type BrokerPipeline, type Capabilities, type Delivery, type OutgoingJob } from '../driver.js';
import { AMQP091_CAPABILITIES } from './capabilities.js';
import { decodeMessageSafely } from './codec.js';
import { encodeJob } from './codec.js';
import type { Session, SessionHost } from './session.js';
import { bindArgs, delayQueueArgs, delayQueueName, matchHeaders, publishTarget } from './topology.js';

type Amqp091PipelineConfig = PipelineConfig<Amqp091PipelineOptions>;

/** Well under the 60 s margin delayQueueArgs puts between x-message-ttl and x-expires. */
const DELAY_REDECLARE_MS = 30_000;

/** A consumer channel and the deliveries it handed out. */
class ConsumerChannel {
  alive = true;
  consumerTag: string | undefined;
  /** delivery tags handed out and not settled yet */
  readonly unsettled = new Set<number>();
  /** acks waiting for this tick's flush (multiple_ack) */
  private acks: { msg: ConsumeMessage; done: () => void; fail: (e: Error) => void }[] = [];
  private flushing = false;

  constructor(
    readonly ch: Channel,
    readonly session: Session,
    private readonly multipleAck: boolean,
  ) {}

  settle(msg: ConsumeMessage, how: 'ack' | { requeue: boolean }): Promise<void> {
    const tag = msg.fields.deliveryTag;
    if (!this.alive) {
      return Promise.reject(new JobrunnerError('E_STALE_DELIVERY', `delivery ${tag} belongs to a channel that is gone; the broker will redeliver it`));
    }
    if (!this.unsettled.has(tag)) return Promise.reject(new JobrunnerError('E_INTERNAL', `delivery ${tag} is already settled`));
    this.unsettled.delete(tag);
    try {
      if (how !== 'ack') {
        this.ch.nack(msg, false, how.requeue);
        return Promise.resolve();
      }
      if (!this.multipleAck) {
        this.ch.ack(msg);
        return Promise.resolve();
      }
    } catch (err) {
      return Promise.reject(new JobrunnerError('E_STALE_DELIVERY', `cannot settle delivery ${tag}: ${errorMessage(err)}`, { cause: err }));
    }
    // multiple_ack: gather this tick's acks and send one basic.ack(multiple) for the ones below every
    // unsettled tag (so it cannot cover a delivery still being worked on), single acks for the rest
    return new Promise<void>((done, fail) => {
      this.acks.push({ msg, done, fail });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => this.flushAcks());
      }
    });
  }

  private flushAcks(): void {
    this.flushing = false;
    const batch = this.acks.sort((a, b) => a.msg.fields.deliveryTag - b.msg.fields.deliveryTag);
    this.acks = [];
    if (!this.alive) {
      for (const a of batch) a.fail(new JobrunnerError('E_STALE_DELIVERY', `delivery ${a.msg.fields.deliveryTag} belongs to a channel that is gone; the broker will redeliver it`));
      return;
    }
    let lowestUnsettled = Infinity;
    for (const t of this.unsettled) if (t < lowestUnsettled) lowestUnsettled = t;
    const below = batch.filter((a) => a.msg.fields.deliveryTag < lowestUnsettled);
    const rest = batch.filter((a) => a.msg.fields.deliveryTag >= lowestUnsettled);
    try {
      const last = below[below.length - 1];
      if (last !== undefined) this.ch.ack(last.msg, below.length > 1);
      for (const a of rest) this.ch.ack(a.msg);
      for (const a of batch) a.done();
    } catch (err) {
      for (const a of batch) a.fail(new JobrunnerError('E_STALE_DELIVERY', `cannot ack: ${errorMessage(err)}`, { cause: err }));
    }
  }

  kill(): void {
    this.alive = false;
    this.unsettled.clear();
  }
}

export class Amqp091Pipeline implements BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  private readonly o: Amqp091PipelineOptions;
  /** declare() succeeded once: declare again after every reconnect */
  private declared = false;
  /** consume() was called and cancel() was not */
  private consuming = false;
  private closed = false;
  private onDelivery: ((d: Delivery) => void) | undefined;
  private consumer: ConsumerChannel | undefined;
  private restoreTimer: NodeJS.Timeout | undefined;
  private restoreFailures = 0;
  /** why the consumer is not attached on the live connection (consumeError()), until it is again */
  private consumeFailure: string | undefined;

  constructor(
    private readonly conn: SessionHost,
    private readonly config: Amqp091PipelineConfig,
  ) {
    this.name = config.name;
    this.o = config.options;
    this.queue = config.options.queue;
  }

  async declare(): Promise<void> {
    const s = await this.session('E_BROKER_DECLARE');
    await this.declareOn(s);
    this.declared = true;
  }

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_INTERNAL', `pipeline ${this.name} is closed`);
    this.onDelivery = onDelivery;
    this.consuming = true;
    const s = this.conn.current();
    // not connected: the reconnect starts the consumer
    if (s !== undefined) await this.startConsumer(s);
  }

  async cancel(): Promise<void> {
    this.consuming = false;
    this.consumeFailure = undefined;
    clearTimeout(this.restoreTimer);
    const c = this.consumer;
    if (c === undefined || !c.alive || c.consumerTag === undefined) return;
    const tag = c.consumerTag;
    c.consumerTag = undefined;
    try {
      await c.ch.cancel(tag);
    } catch (err) {
      this.conn.logger.debug({ pipeline: this.name }, `amqp091 cancel: ${errorMessage(err)}`);
    }
  }

  async publish(job: OutgoingJob): Promise<void> {
    const s = await this.session('E_PUBLISH');
    let ch;
    try {
      ch = await s.publishChannel();
    } catch (err) {
      throw asError('E_PUBLISH', `cannot open the publish channel`, err);
    }
    let { exchange, routingKey } = publishTarget(this.o);
    if (job.delayMs > 0) {
      const name = delayQueueName(this.o, job.delayMs);
      try {
        // declared on a short-lived channel (a refusal must not close the shared publish channel), and
        // again at least every 30 s: publishing does not count as use, so x-expires would otherwise run out
        const at = s.delayQueues.get(name);
        if (at === undefined || Date.now() - at > DELAY_REDECLARE_MS) {
          await s.withChannel((tmp) => tmp.assertQueue(name, { durable: this.o.durable, arguments: delayQueueArgs(this.o, job.delayMs) }));
          s.delayQueues.set(name, Date.now());
        }
      } catch (err) {
        throw asError('E_PUBLISH', `cannot declare the delay queue ${name}`, err);
      }
      exchange = '';
      routingKey = name;
    }
    const { content, options } = encodeJob(job, this.o, job.delayMs > 0 ? {} : matchHeaders(this.o));
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(err);
      s.pending.add(fail);
      try {
        // mandatory: a job no queue would take is returned, and fails instead of vanishing
        ch.publish(exchange, routingKey, content, { ...options, mandatory: true }, (err: unknown) => {
          s.pending.delete(fail);
          if (err !== null && err !== undefined) reject(asError('E_PUBLISH', `the broker did not confirm job ${job.id} to ${this.name}`, err));
          else if (s.takeReturned(job.id)) {
            const where = exchange === '' ? `queue "${routingKey}"` : `exchange "${exchange}" with routing key "${routingKey}"`;
            reject(new JobrunnerError('E_PUBLISH', `job ${job.id} to ${this.name} is unroutable: no queue is bound to ${where}`));
          } else resolve();
        });
      } catch (err) {
        s.pending.delete(fail);
        // amqplib refuses what it cannot encode (a value out of range, a table over 64 KiB) with a TypeError
        // or RangeError before anything is sent: the message's own content, which no retry will change
        if (err instanceof TypeError || err instanceof RangeError) reject(new JobrunnerError('E_UNPUBLISHABLE', `job ${job.id} cannot be published to ${this.name}: ${errorMessage(err)}`, { cause: err }));
        else reject(asError('E_PUBLISH', `cannot publish job ${job.id} to ${this.name}`, err));
      }
    });
  }

  capabilities(): Capabilities {
    return AMQP091_CAPABILITIES;
  }

  consumeError(): string | undefined {
    return this.consuming && this.conn.current() !== undefined ? this.consumeFailure : undefined;
  }

  async readyCount(): Promise<number | undefined> {
    const s = this.conn.current();
    if (s === undefined) return undefined;
    try {
      return (await s.withChannel((ch) => ch.checkQueue(this.queue))).messageCount;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cancel();
    this.conn.forget(this);
    const c = this.consumer;
    this.consumer = undefined;
    if (c !== undefined && c.alive) {
      c.kill();
      await c.ch.close().catch(() => undefined);
    }
    const s = this.conn.current();
    if (this.o.deleteQueueOnStop && s !== undefined) {
      try {
        await s.withChannel((ch) => ch.deleteQueue(this.queue));
      } catch (err) {
        this.conn.logger.warn({ pipeline: this.name }, `amqp091 cannot delete queue ${this.queue}: ${errorMessage(err)}`);
      }
    }
  }

  /** @internal called by the connection on a new session, before it reports connected; never throws */
  async sessionReady(s: Session): Promise<void> {
    if (this.closed) return;
    try {
      if (this.declared) await this.declareOn(s);
      if (this.consuming) await this.startConsumer(s);
      this.restoreFailures = 0;
    } catch (err) {
      const why = `amqp091 pipeline ${this.name} cannot be restored: ${errorMessage(err)}`;
      // the first failure of a run at error, the retries (with backoff) at debug: a missing queue is retried for as long as it takes
      this.conn.logger[this.restoreFailures === 0 ? 'error' : 'debug']({ pipeline: this.name, code: 'E_BROKER_DECLARE' }, why);
      if (this.consuming) this.consumeFailure = consumeFailureOf(this.queue, err);
      this.scheduleRestore(s);
    }
  }

  /** @internal the session died: its deliveries are stale */
  sessionLost(s: Session): void {
    // the connection's status says why now; the next session restores the consumer or says why not
    this.consumeFailure = undefined;
    if (this.consumer?.session === s) {
      this.consumer.kill();
      this.consumer = undefined;
    }
    clearTimeout(this.restoreTimer);
  }

  private scheduleRestore(s: Session): void {
    clearTimeout(this.restoreTimer);
    if (this.closed || s.closed) return;
    this.restoreFailures++;
    this.restoreTimer = setTimeout(() => void this.sessionReady(s), backoffDelay(RECONNECT_BACKOFF, this.restoreFailures));
  }

  private async session(code: 'E_PUBLISH' | 'E_BROKER_DECLARE'): Promise<Session> {
    const s = await this.conn.waitSession();
    if (s === undefined) throw new JobrunnerError(code, `pipeline ${this.name}: not connected to the broker`);
    return s;
  }

  private async declareOn(s: Session): Promise<void> {
    const o = this.o;
    await s.withChannel(async (ch) => {
      if (o.exchange !== '' && o.exchangeDeclare) {
        await step(`exchange ${o.exchange}`, () =>
          ch.assertExchange(o.exchange, o.exchangeType, { durable: o.exchangeDurable, autoDelete: o.exchangeAutoDelete }),
        );
      }
      if (!o.queueDeclare) {
        try {
          await ch.checkQueue(o.queue);
        } catch (err) {
          const missing = /\b404\b|NOT[_-]FOUND/.test(errorMessage(err));
          const what = missing ? `queue "${o.queue}" does not exist (declare: false needs an existing queue)` : `cannot check queue "${o.queue}"`;
          throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${this.name}: ${what}: ${errorMessage(err)}`, { cause: err });
        }
        return;
      }
      await step(`queue ${o.queue}`, () =>
        ch.assertQueue(o.queue, { durable: o.durable, autoDelete: o.queueAutoDelete, exclusive: o.exclusive, arguments: { ...o.queueHeaders } }),
      );
      if (o.exchange !== '') {
        await step(`binding of ${o.queue} to ${o.exchange}`, () => ch.bindQueue(o.queue, o.exchange, o.routingKey, bindArgs(o)));
      }
    });
  }

  private async startConsumer(s: Session): Promise<void> {
    if (!this.consuming || this.closed) return;
    let c = this.consumer;
    if (c !== undefined && c.consumerTag !== undefined && c.alive) return; // already consuming
    if (c === undefined || !c.alive || c.session !== s) {
      const ch = await s.model.createChannel();
      const fresh = new ConsumerChannel(ch, s, this.o.multipleAck);
      ch.on('error', (err: unknown) => this.conn.logger.warn({ pipeline: this.name, code: 'E_BROKER_CLOSED' }, `amqp091 channel error: ${errorMessage(err)}`));
      ch.on('close', () => {
        fresh.kill();
        if (this.consumer !== fresh) return;
        this.consumer = undefined;
        // the channel died but the connection lives (e.g. the queue was deleted): try again later
        if (this.consuming && !s.closed) {
          this.consumeFailure ??= `the consumer channel of queue "${this.queue}" closed; consuming again when it can`;
          this.scheduleRestore(s);
        }
      });
      await ch.prefetch(this.o.prefetch, false);
      c = fresh;
      this.consumer = fresh;
    }
    const consumer = c;
    const reply = await consumer.ch.consume(this.queue, (msg) => this.onMessage(consumer, msg), {
      noAck: false,
      ...(this.o.consumerId !== '' ? { consumerTag: this.o.consumerId } : {}),
    });
    consumer.consumerTag = reply.consumerTag;
    this.consumeFailure = undefined;
  }

  private onMessage(c: ConsumerChannel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // the broker cancelled the consumer (queue deleted, node down): consume again when possible
      c.consumerTag = undefined;
      this.conn.logger.warn({ pipeline: this.name }, `amqp091 broker cancelled the consumer of ${this.queue}`);
      if (this.consuming) {
        this.consumeFailure = `the broker cancelled the consumer of queue "${this.queue}" (was it deleted?); consuming again when it can`;
        this.scheduleRestore(c.session);
      }
      return;
    }
    c.unsettled.add(msg.fields.deliveryTag);
    const job = decodeMessageSafely(msg, { pipeline: this.name, pipelineJob: this.config.job, queue: this.queue });
    const delivery = new Amqp091Delivery(c, msg, job);
    const handler = this.onDelivery;
    if (handler === undefined) {
      void c.settle(msg, { requeue: true }).catch(() => undefined);
      return;
    }
    try {
      handler(delivery);
    } catch (err) {
      this.conn.logger.error({ pipeline: this.name }, `delivery handler threw: ${errorMessage(err)}`);
    }
  }
}

/** A delivery as the pipeline's Delivery: the decoded job fields, settled on the channel it came on. */
class Amqp091Delivery extends DeliveryBase {
  constructor(
    private readonly c: ConsumerChannel,
    private readonly msg: ConsumeMessage,
    j: ReturnType<typeof decodeMessageSafely>,
  ) {
    super(j);
  }

  ack(): Promise<void> {
    return this.c.settle(this.msg, 'ack');
  }

  reject(requeue: boolean): Promise<void> {
    return this.c.settle(this.msg, { requeue });
  }

  live(): boolean {
    return this.c.alive;
  }
}

/** consumeError()'s text for a failed restore: the broker's reason, naming the queue */
function consumeFailureOf(queue: string, err: unknown): string {
  const why = errorMessage(err);
  return why.includes(`"${queue}"`) || why.includes(`'${queue}'`) ? why : `cannot consume queue "${queue}": ${why}`;
}

/** Runs one declare step, turning a broker refusal into E_BROKER_DECLARE naming what failed. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asError('E_BROKER_DECLARE', `cannot declare ${what}`, err);
  }
}

function asError(code: 'E_PUBLISH' | 'E_BROKER_DECLARE', what: string, err: unknown): JobrunnerError {
  if (err instanceof JobrunnerError && err.code === code) return err;
  return new JobrunnerError(code, `${what}: ${errorMessage(err)}`, { cause: err });
}
