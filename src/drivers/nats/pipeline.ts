// One nats pipeline: a subject on a stream, consumed through a durable pull consumer with explicit acks.
// Settlement: ack (then delete the message with delete_after_ack), reject(true) = nak, reject(false) = term
// (JetStream has no dead-lettering of its own), retryLater(ms) = nak(ms) so the server's delivery count is
// the attempt. While a delivery is held, `working()` goes out before ack_wait runs out, so a long job is
// not handed to someone else. A delayed push goes through the server's message scheduling where the server
// (2.12+) and the stream allow it (./schedule.ts), else through the delay stream (./delay.ts).

import type { Consumer, JsMsg, ScheduleOptions } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { PipelineConfig } from '../../config/types.js';
import { DeliveryBase, type BrokerPipeline, type Capabilities, type Delivery, type OutgoingJob } from '../driver.js';
import type { NatsPipelineOptions } from './options.js';
import { NATS_CAPABILITIES } from './capabilities.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import type { LiveNats, NatsLink } from './live.js';
import { PullLoop } from './pull.js';
import { SUBJECT_HEADER, decodeMessage, encodeJob, parseAckSubject, type RawHeaders } from './codec.js';
import { deferred, type Deferred } from '../../shared/deferred.js';
import { ensureConsumer, ensureStream, consumerInfo, streamInfo } from './topology.js';
import { DUE_HEADER, TARGET_HEADER, delayStreamName, delaySubject, ensureDelayStream } from './delay.js';
import { delayPath, newScheduleSubject, scheduleSubjects, serverSchedules, type DelayPath } from './schedule.js';

const NO_HEADERS: RawHeaders = [];

/**
 * The acks given in one pass of the event loop, written together: the client writes what is queued on
 * its socket a microtask after the first command, so acks given in separate microtasks (as each worker
 * answer is settled) could go out in separate writes. `done` resolves with the messages whose ack threw
 * (a closed connection).
 */
interface AckBatch {
  msgs: JsMsg[];
  done: Deferred<Set<JsMsg>>;
}

type NatsPipelineConfig = PipelineConfig<NatsPipelineOptions>;

export class NatsPipeline implements BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  private readonly o: NatsPipelineOptions;
  private loop: PullLoop | undefined;
  private onDelivery: ((d: Delivery) => void) | undefined;
  private readonly held = new Set<NatsDelivery>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** the consumer's ack_wait as the server has it (an existing consumer keeps its own) */
  private ackWaitMs: number;
  private declaredOn: LiveNats | undefined;
  private closed: Promise<void> | undefined;
  /** deliveries that arrived while not consuming */
  private parked: NatsDelivery[] = [];
  private acks: AckBatch | undefined;
  private readonly flushAcks = (): void => {
    const batch = this.acks;
    this.acks = undefined;
    if (batch === undefined) return;
    const failed = new Set<JsMsg>();
    for (const m of batch.msgs) {
      try {
        m.ack();
      } catch {
        failed.add(m);
      }
    }
    batch.done.resolve(failed);
  };
  /** how delayed pushes go on the live connection `on` (another connection may be another server) */
  private delays: { on: LiveNats; path: DelayPath; mover: boolean } | undefined;
  /** the last delay path logged, so a reconnect does not repeat it */
  private delaysLogged: string | undefined;

  constructor(
    private readonly config: NatsPipelineConfig,
    private readonly conn: NatsLink,
    private readonly logger: Logger,
  ) {
    this.name = config.name;
    this.o = config.options;
    this.queue = this.o.stream;
    this.ackWaitMs = this.o.ackWaitMs;
  }

  async declare(): Promise<void> {
    const live = await this.conn.waitConnected(30_000);
    await this.declareOn(live);
  }

  private async declareOn(live: LiveNats): Promise<void> {
    const stream = await ensureStream(live.jsm, this.name, this.o, serverSchedules(live.serverVersion) ? scheduleSubjects(this.o.stream) : undefined);
    const info = await ensureConsumer(live.jsm, this.name, this.o, {
      name: this.o.consumer,
      ackWaitMs: this.o.ackWaitMs,
      // prefetch bounds what this daemon holds; messages waiting out a nak(delay) count as pending on the
      // server, so a limit there would stall the pipeline behind them
      maxAckPending: -1,
      deliverNew: this.o.deliverNew,
    });
    const ackWait = Math.round((info.config.ack_wait ?? 0) / 1_000_000);
    if (ackWait > 0) this.ackWaitMs = ackWait;
    if (info.config.filter_subject !== undefined && info.config.filter_subject !== '' && info.config.filter_subject !== this.o.subject) {
      this.logger.warn({ consumer: this.o.consumer, filter_subject: info.config.filter_subject, subject: this.o.subject }, 'the existing consumer filters on another subject than the pipeline publishes to');
    }
    await this.settleDelayPath(live, delayPath(live.serverVersion, stream, info));
    this.declaredOn = live;
  }

  /**
   * Native scheduling, or the delay stream (created with declare: true). A mover runs for the delay
   * stream whenever it exists, also beside native scheduling: messages a daemon put there before the
   * stream allowed schedules are still moved when due.
   */
  private async settleDelayPath(live: LiveNats, path: DelayPath): Promise<void> {
    let mover = true;
    if (!path.native) {
      if (this.o.declare) await ensureDelayStream(live.jsm, this.o.stream);
    } else mover = (await streamInfo(live.jsm, delayStreamName(this.o.stream))) !== undefined;
    this.delays = { on: live, path, mover };
    const said = path.native
      ? `delayed pushes: nats-server ${live.serverVersion} message scheduling on \`${scheduleSubjects(this.o.stream)}\``
      : `delayed pushes: the delay stream ${delayStreamName(this.o.stream)} (${path.reason})`;
    if (said !== this.delaysLogged) {
      this.delaysLogged = said;
      // worth an info line where the server could schedule and the stream does not let it
      if (path.native || serverSchedules(live.serverVersion)) this.logger.info({ stream: this.o.stream }, said);
      else this.logger.debug({ stream: this.o.stream }, said);
    }
  }

  /** the delay path on this connection, checked again after a reconnect (maybe to another server) */
  private async delayPathOn(live: LiveNats): Promise<DelayPath> {
    if (this.delays?.on !== live) {
      const stream = await streamInfo(live.jsm, this.o.stream);
      if (stream === undefined) return { native: false, reason: `stream \`${this.o.stream}\` does not exist` };
      await this.settleDelayPath(live, delayPath(live.serverVersion, stream, await consumerInfo(live.jsm, this.o.stream, this.o.consumer)));
    }
    return (this.delays as { path: DelayPath }).path;
  }

  private async consumerOn(live: LiveNats): Promise<Consumer> {
    // after a reconnect, declare again (a server restarted without its state has lost them)
    if (this.declaredOn !== live) await this.declareOn(live);
    return live.js.consumers.get(this.o.stream, this.o.consumer);
  }

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    if (this.closed !== undefined) throw new JobrunnerError('E_SHUTDOWN', `pipeline ${this.name} is closed`);
    // the consumer must exist before consume() resolves: a missing stream is the caller's error now
    const live = await this.conn.waitConnected(30_000);
    await this.consumerOn(live);
    this.onDelivery = onDelivery;
    if (this.loop === undefined) {
      this.loop = new PullLoop({
        conn: this.conn,
        logger: this.logger,
        limit: this.o.prefetch,
        consumer: (l) => this.consumerOn(l),
        onMessage: (m, gen) => this.deliver(m, gen),
      });
      this.loop.start();
      this.startHeartbeat();
    } else this.loop.resume();
    if (this.delays?.mover !== false) this.conn.movers.acquire(this.o.stream);
    // what the last fetch brought after a cancel, first
    const parked = this.parked;
    this.parked = [];
    for (const d of parked) onDelivery(d);
  }

  async cancel(): Promise<void> {
    this.onDelivery = undefined;
    this.loop?.pause();
  }

  private deliver(m: JsMsg, generation: number): void {
    // read from the reply subject here, where the client's m.info splits it into a dozen strings per
    // message; its JsMsg has the subject as `reply` without declaring it, hence the check and the fallback
    const reply = (m as { reply?: unknown }).reply;
    const info = (typeof reply === 'string' ? parseAckSubject(reply) : undefined) ?? { stream: m.info.stream, deliveryCount: m.info.deliveryCount, streamSeq: m.info.streamSequence };
    const job = decodeMessage(m.data, m.headers ?? NO_HEADERS, {
      pipeline: this.name,
      pipelineJob: this.config.job,
      queue: this.queue,
      stream: info.stream,
      streamSeq: info.streamSeq,
      deliveryCount: info.deliveryCount,
    });
    // as RoadRunner's nats driver does: the subject the message came on, for the worker
    job.headers[SUBJECT_HEADER] = [m.subject];
    const d = new NatsDelivery(job, m, info.streamSeq, this, generation, this.loop);
    this.held.add(d);
    const cb = this.onDelivery;
    // brought by the fetch that was open when consuming was cancelled: kept (alive) for the next consume
    if (cb === undefined) this.parked.push(d);
    else cb(d);
  }

  /** @internal queues an ack of `m` with the others given in this pass of the event loop; resolves with the messages whose ack could not be written */
  queueAck(m: JsMsg): Promise<Set<JsMsg>> {
    let batch = this.acks;
    if (batch === undefined) {
      batch = this.acks = { msgs: [], done: deferred<Set<JsMsg>>() };
      setImmediate(this.flushAcks);
    }
    batch.msgs.push(m);
    return batch.done.promise;
  }

  /** @internal a delivery is settled (or dropped as stale) */
  settled(d: NatsDelivery): void {
    this.held.delete(d);
  }

  /** @internal */
  isLive(generation: number): boolean {
    return this.conn.liveConnection() !== undefined && this.conn.currentGeneration() === generation;
  }

  /** @internal */
  async deleteMessage(seq: number): Promise<void> {
    const live = this.conn.liveConnection();
    if (live === undefined) return;
    try {
      await live.jsm.streams.deleteMessage(this.o.stream, seq, false);
    } catch (err) {
      this.logger.warn({ seq, err: errorMessage(err) }, 'delete_after_ack: the acked message could not be deleted from the stream');
    }
  }

  /** working() for every held delivery, often enough that none reaches ack_wait */
  private startHeartbeat(): void {
    if (this.heartbeat !== undefined) return;
    const every = Math.max(100, Math.floor(this.ackWaitMs / 3));
    this.heartbeat = setInterval(() => {
      for (const d of this.held) d.keepAlive();
    }, every);
    this.heartbeat.unref();
  }

  async publish(job: OutgoingJob): Promise<void> {
    const live = await this.conn.waitConnected(30_000);
    const enc = encodeJob(job, this.o.priority);
    const h = natsHeaders();
    for (const [k, v] of enc.headers) h.append(k, v);
    let subject = this.o.subject;
    let schedule: ScheduleOptions | undefined;
    if (job.delayMs > 0) {
      const due = Date.now() + job.delayMs;
      if ((await this.delayPathOn(live)).native) {
        // Nats-Schedule: @at <due, RFC 3339> and Nats-Schedule-Target: the pipeline's subject
        subject = newScheduleSubject(this.o.stream);
        schedule = { specification: new Date(due), target: this.o.subject };
      } else {
        h.set(DUE_HEADER, String(due));
        h.set(TARGET_HEADER, this.o.subject);
        subject = delaySubject(this.o.stream);
      }
    }
    try {
      await live.js.publish(subject, enc.data, { msgID: enc.msgId, headers: h, ...(schedule === undefined ? {} : { schedule }) });
    } catch (err) {
      if (job.delayMs > 0 && schedule === undefined && /no responders|503/i.test(errorMessage(err))) {
        throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.name}: delayed push needs the delay stream ${delaySubject(this.o.stream)} (created with declare: true): ${errorMessage(err)}`, { cause: err });
      }
      const what = schedule === undefined ? `publish to ${subject}` : `scheduled publish for ${this.o.subject} (on ${subject})`;
      throw new JobrunnerError('E_PUBLISH', `pipeline ${this.name}: ${what} not confirmed: ${errorMessage(err)}`, { cause: err });
    }
  }

  capabilities(): Capabilities {
    return NATS_CAPABILITIES;
  }

  async readyCount(): Promise<number | undefined> {
    const live = this.conn.liveConnection();
    if (live === undefined) return undefined;
    const info = await consumerInfo(live.jsm, this.o.stream, this.o.consumer);
    // parked deliveries wait for a worker as much as the messages not yet pulled
    return info === undefined ? undefined : info.num_pending + this.parked.length;
  }

  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  private async doClose(): Promise<void> {
    await this.cancel();
    await this.loop?.stop();
    // parked deliveries were never handed out: back to the server now, for whoever consumes next
    const parked = this.parked;
    this.parked = [];
    for (const d of parked) await d.reject(true, 'closing').catch(() => undefined);
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.o.deleteStreamOnStop) {
      const live = this.conn.liveConnection();
      if (live !== undefined) {
        try {
          await live.jsm.streams.delete(this.o.stream);
        } catch (err) {
          this.logger.warn({ stream: this.o.stream, err: errorMessage(err) }, 'delete_stream_on_stop: the stream could not be deleted');
        }
      }
    }
    this.conn.forget(this);
  }

  onConnected(_live: LiveNats): void {
    this.loop?.poke();
  }

  onDisconnected(): void {
    this.loop?.poke();
  }

  /** @internal */
  get deleteAfterAck(): boolean {
    return this.o.deleteAfterAck;
  }
}

export class NatsDelivery extends DeliveryBase {
  private done = false;

  constructor(
    job: ConstructorParameters<typeof DeliveryBase>[0],
    private readonly msg: JsMsg,
    private readonly streamSeq: number,
    private readonly pipe: NatsPipeline,
    private readonly generation: number,
    private loop: PullLoop | undefined,
  ) {
    super(job);
  }

  live(): boolean {
    return this.pipe.isLive(this.generation);
  }

  /** @internal the heartbeat: the job is still being worked on */
  keepAlive(): void {
    if (this.done || !this.live()) return;
    try {
      this.msg.working();
    } catch {
      // disconnected: the next heartbeat or the server's redelivery takes over
    }
  }

  async touch(): Promise<void> {
    this.keepAlive();
  }

  async ack(): Promise<void> {
    this.settle();
    if ((await this.pipe.queueAck(this.msg)).has(this.msg)) {
      throw new JobrunnerError('E_STALE_DELIVERY', `job ${this.id}: the ack could not be written (the connection is closed); the server redelivers the message after ack_wait`);
    }
    if (this.pipe.deleteAfterAck) await this.pipe.deleteMessage(this.streamSeq);
  }

  async reject(requeue: boolean, _reason?: string): Promise<void> {
    this.settle();
    // term without a reason: servers before 2.10 ignore "+TERM <reason>" (it would not terminate)
    if (requeue) this.msg.nak();
    else this.msg.term();
  }

  /** a retry after `delayMs`: JetStream hands the same message back then, counting the delivery */
  async retryLater(delayMs: number): Promise<void> {
    this.settle();
    this.msg.nak(Math.max(0, Math.round(delayMs)));
  }

  private settle(): void {
    if (!this.live()) {
      this.release();
      throw new JobrunnerError('E_STALE_DELIVERY', `job ${this.id}: the connection it came on is gone; the server redelivers it after ack_wait`);
    }
    if (this.done) throw new JobrunnerError('E_INTERNAL', `delivery of job ${this.id} is settled already`);
    this.release();
  }

  private release(): void {
    if (this.done) return;
    this.done = true;
    this.pipe.settled(this);
    this.loop?.release();
  }
}
