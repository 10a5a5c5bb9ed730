// One amqp1 pipeline: a receiver on its own session with explicit credit (prefetch = unsettled
// deliveries, one credit back per settlement), a sender for publishes that waits for each
// disposition, declare / readyCount through RabbitMQ 4's management node, and Service Bus lock
// renewal. Re-attaches by itself on every new connection while consuming is on.

import type { Receiver, Delivery as RheaDelivery, Sender, Session } from 'rhea';
import type { PipelineConfig } from '../../config/types.js';
import type { Amqp1PipelineOptions } from './options.js';
import { DeliveryBase, type BrokerPipeline, type Capabilities, type Delivery, type OutgoingJob } from '../driver.js';
import { AMQP1_CAPABILITIES, capabilitiesFor } from './capabilities.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { RECONNECT_BACKOFF, backoffDelay } from '../../shared/backoff.js';
import { deferred, type Deferred } from '../../shared/deferred.js';
import { consumeAddress, effectiveBroker, publishAddress, rejectOutcome, type BrokerKind, type Outcome } from './broker.js';
import { decodeMessageSafely, encodeJob, SCHEDULED_ENQUEUE_TIME } from './message.js';
import { ManagementLink, describeAmqpError } from './management.js';
import { delayQueueName } from '../rabbitmq-delays.js';
import { adoptDeliveryCount, adoptTransferWindow, wrapDeliveryCount, wrapTransferIds } from './credit.js';
import { installLeanDeliveries } from './rhea-patches.js';
import { declareDelayQueue, declareRabbitTopology, rabbitReadyCount } from './topology.js';
import type { ConnectionHost, LiveConnection } from './live.js';

type Amqp1Config = PipelineConfig<Amqp1PipelineOptions>;

interface ReceiverState {
  live: LiveConnection;
  session: Session;
  receiver: Receiver;
  /** deliveries handed out and not settled yet */
  unsettled: number;
  open: boolean;
  /** accepted settlements waiting for the next flush (see queueSettlement) */
  accepts: PendingSettle[];
  /** other outcomes, each flushed alone */
  others: PendingSettle[];
  flushScheduled: boolean;
  /** the last flush wrote accepted outcomes: the next one takes a waiting other outcome first */
  lastFlushAccepted: boolean;
}

interface PendingSettle {
  rd: RheaDelivery;
  outcome: Outcome;
  id: string;
  done: () => void;
  fail: (err: Error) => void;
}

interface SenderState {
  live: LiveConnection;
  session: Session;
  senders: Map<string, Sender>;
}

export class Amqp1Pipeline implements BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  private readonly options: Amqp1PipelineOptions;
  private onDelivery: ((d: Delivery) => void) | undefined;
  private consuming = false;
  private closed = false;
  private rx: ReceiverState | undefined;
  private tx: SenderState | undefined;
  private sbManagement: ManagementLink | undefined;
  private readonly pendingPublishes = new Set<Deferred<void>>();
  private reattachTimer: NodeJS.Timeout | undefined;
  private reattachFailures = 0;
  private readonly declaredDelays = new Set<string>();

  constructor(
    private readonly config: Amqp1Config,
    private readonly conn: ConnectionHost,
    private readonly logger: Logger,
  ) {
    this.name = config.name;
    this.options = config.options;
    this.queue = config.options.queue;
  }

  private get waitMs(): number {
    return this.config.redialTimeoutMs > 0 ? this.config.redialTimeoutMs : 30_000;
  }

  private kind(live: LiveConnection): BrokerKind {
    return effectiveBroker(this.options.broker, live.broker);
  }

  // ---- lifecycle from the connection ----

  onConnected(live: LiveConnection): void {
    this.declaredDelays.clear();
    this.reattachFailures = 0;
    if (this.consuming && !this.closed) this.attachReceiver(live).catch((err) => this.scheduleReattach(err));
  }

  onDisconnected(generation: number): void {
    if (this.rx?.live.generation === generation) this.rx = undefined;
    if (this.tx?.live.generation === generation) this.tx = undefined;
    this.sbManagement = undefined;
    const err = new JobrunnerError('E_PUBLISH', 'the amqp1 connection was lost before the broker confirmed the publish');
    for (const p of this.pendingPublishes) p.reject(err);
    this.pendingPublishes.clear();
  }

  // ---- BrokerPipeline ----

  async declare(): Promise<void> {
    const live = await this.conn.waitConnected(this.waitMs);
    const kind = this.kind(live);
    if (kind === 'rabbitmq4' && this.options.address === undefined) {
      await declareRabbitTopology(live.rabbitManagement(), this.options);
      return;
    }
    // nothing to declare over AMQP 1.0 here: check the source exists by attaching with no credit
    await this.passiveCheck(live, consumeAddress(kind, this.options));
  }

  capabilities(): Capabilities {
    const live = this.conn.liveConnection();
    return live === undefined ? AMQP1_CAPABILITIES : capabilitiesFor(this.kind(live), this.options.address !== undefined);
  }

  /**
   * RabbitMQ 3.x over AMQP 1.0 takes delays only through delay queues that exist (it cannot declare
   * them): is the one for this delay there?
   */
  async checkDelay(delayMs: number): Promise<void> {
    const live = await this.conn.waitConnected(this.waitMs);
    const name = delayQueueName(this.queue, delayMs);
    try {
      await this.passiveCheck(live, `/amq/queue/${name}`);
    } catch (err) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `the delay queue ${name}, which RabbitMQ 3.x cannot declare over AMQP 1.0, is missing (${errorMessage(err)}); create it (docs/drivers/amqp1-rabbitmq3.md)`, { cause: err });
    }
  }

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_BROKER_CLOSED', `pipeline ${this.name} is closed`);
    this.onDelivery = onDelivery;
    this.consuming = true;
    if (this.rx !== undefined && this.rx.open) {
      this.rx.receiver.drain = false;
      this.topUpCredit(this.rx);
      return;
    }
    const live = this.conn.liveConnection();
    if (live !== undefined) await this.attachReceiver(live);
  }

  async cancel(): Promise<void> {
    this.consuming = false;
    if (this.reattachTimer !== undefined) clearTimeout(this.reattachTimer);
    this.reattachTimer = undefined;
    const rx = this.rx;
    // stop the flow: the broker sends nothing more, the link stays so held deliveries can still be settled
    if (rx !== undefined && rx.open) {
      try {
        if (this.kind(rx.live) === 'rabbitmq3') revokeCredit(rx.receiver);
        else rx.receiver.drain_credit();
      } catch {
        // the link is going away
      }
    }
  }

  async publish(job: OutgoingJob): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_PUBLISH', `pipeline ${this.name} is closed`);
    let live: LiveConnection;
    try {
      live = await this.conn.waitConnected(this.waitMs);
    } catch (err) {
      throw new JobrunnerError('E_PUBLISH', `publish to ${this.name} failed: ${errorMessage(err)}`, { cause: err });
    }
    const kind = this.kind(live);
    let address = publishAddress(kind, this.options);
    const annotations: Record<string, unknown> = {};
    if (job.delayMs > 0) {
      if (kind === 'servicebus') {
        annotations[SCHEDULED_ENQUEUE_TIME] = new Date(Date.now() + job.delayMs);
      } else if (kind === 'rabbitmq4' || kind === 'rabbitmq3') {
        address = await this.delayAddress(live, kind, job.delayMs);
      } else {
        throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.name}: the broker (generic AMQP 1.0) cannot delay messages; publish without delay`);
      }
    }
    const message = encodeJob(job, {
      durable: this.options.durable,
      defaultPriority: this.options.priority,
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    });
    const sender = await this.senderFor(live, address);
    const d = deferred<void>();
    this.pendingPublishes.add(d);
    try {
      let delivery;
      try {
        delivery = sender.send(message);
      } catch (err) {
        // rhea encodes before it sends: a TypeError or RangeError is the message's own content
        if (err instanceof TypeError || err instanceof RangeError) throw new JobrunnerError('E_UNPUBLISHABLE', `job ${job.id} cannot be published to ${this.name}: ${errorMessage(err)}`, { cause: err });
        throw err;
      }
      (delivery as unknown as { jobrunnerPublish?: Deferred<void> }).jobrunnerPublish = d;
      await d.promise;
    } finally {
      this.pendingPublishes.delete(d);
    }
  }

  async readyCount(): Promise<number | undefined> {
    const live = this.conn.liveConnection();
    if (live === undefined || this.kind(live) !== 'rabbitmq4' || this.options.address !== undefined) return undefined;
    try {
      return await rabbitReadyCount(live.rabbitManagement(), this.queue);
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.cancel();
    this.closed = true;
    this.conn.forget(this);
    for (const s of [this.rx?.session, this.tx?.session]) {
      try {
        s?.close();
      } catch {
        // connection gone
      }
    }
    this.sbManagement?.close();
    this.rx = undefined;
    this.tx = undefined;
  }

  // ---- receiving ----

  private attachReceiver(live: LiveConnection): Promise<void> {
    const kind = this.kind(live);
    const address = consumeAddress(kind, this.options);
    const session = live.connection.create_session();
    installLeanDeliveries(session);
    session.begin();
    const receiver = session.attach_receiver({
      name: `jobrunner-${this.name}-${live.generation}-${Date.now()}`,
      source: { address },
      credit_window: 0,
      autoaccept: false,
      // RabbitMQ and Service Bus settle on our disposition (rcv_settle_mode first)
      rcv_settle_mode: 0,
    });
    const state: ReceiverState = { live, session, receiver, unsettled: 0, open: false, accepts: [], others: [], flushScheduled: false, lastFlushAccepted: false };
    this.rx = state;
    const opened = deferred<void>();
    receiver.on('receiver_open', () => {
      adoptDeliveryCount(receiver);
      adoptTransferWindow(session);
      state.open = true;
      this.reattachFailures = 0;
      this.logger.info({ address, broker: kind }, `amqp1 consuming ${address}`);
      if (this.consuming) this.topUpCredit(state);
      opened.resolve();
    });
    const onGone = (what: string, err: unknown): void => {
      const wasOpen = state.open;
      state.open = false;
      const e = new JobrunnerError('E_BROKER_DECLARE', `amqp1 ${what} for ${address} closed: ${describeAmqpError(err)}`);
      opened.reject(e);
      if (this.rx !== state) return;
      this.rx = undefined;
      try {
        session.close();
      } catch {
        // gone
      }
      // a broker-side close while the connection lives on (queue deleted, session ended): re-attach
      if (wasOpen && this.conn.liveConnection() === live) this.scheduleReattach(e);
    };
    receiver.on('receiver_close', (ctx) => onGone('receiver', ctx.receiver?.error));
    receiver.on('receiver_error', (ctx) => onGone('receiver', ctx.receiver?.error));
    session.on('session_close', (ctx) => onGone('session', ctx.session?.error));
    session.on('session_error', (ctx) => onGone('session', ctx.session?.error));
    receiver.on('message', (ctx) => {
      wrapDeliveryCount(receiver);
      wrapTransferIds(session);
      if (ctx.message === undefined || ctx.delivery === undefined) return;
      this.handleMessage(state, kind, address, ctx.message, ctx.delivery);
    });
    return opened.promise;
  }

  private scheduleReattach(err: unknown): void {
    if (!this.consuming || this.closed || this.reattachTimer !== undefined) return;
    this.reattachFailures += 1;
    const delay = backoffDelay(RECONNECT_BACKOFF, this.reattachFailures);
    this.logger.warn({ code: 'E_BROKER_CLOSED', err: errorMessage(err), retryInMs: delay }, `amqp1 receiver lost: ${errorMessage(err)}`);
    this.reattachTimer = setTimeout(() => {
      this.reattachTimer = undefined;
      const live = this.conn.liveConnection();
      if (live === undefined || !this.consuming || this.closed || this.rx !== undefined) return;
      this.attachReceiver(live).catch((e) => this.scheduleReattach(e));
    }, delay);
  }

  /**
   * Credit back up to prefetch (unsettled + credit never exceeds it). After settlements it waits until
   * a quarter of the window is free, as rhea's own credit window does: one flow frame per many
   * settlements instead of one per tick, less work for the broker and for us (issue 7).
   */
  private topUpCredit(state: ReceiverState, eager = true): void {
    const credit = (state.receiver as unknown as { credit: number }).credit;
    const prefetch = this.options.prefetch;
    const want = prefetch - state.unsettled - credit;
    if (want > 0 && (eager || want >= Math.max(1, prefetch >> 2))) state.receiver.add_credit(want);
  }

  private handleMessage(state: ReceiverState, kind: BrokerKind, address: string, message: import('rhea').Message, rd: RheaDelivery): void {
    state.unsettled += 1;
    if (!this.consuming || this.onDelivery === undefined) {
      // arrived after cancel(): give it back at once
      this.queueSettlement(state, rd, kind === 'rabbitmq3' || kind === 'generic' ? { kind: 'released' } : { kind: 'modified', deliveryFailed: false, undeliverableHere: false }, 'late').catch(() => undefined);
      return;
    }
    const delivery = new Amqp1Delivery(this, state, rd, kind, decodeMessageSafely(message, { pipeline: this.name, pipelineJob: this.config.job, queue: this.queue }));
    if (kind === 'servicebus') {
      const lockToken = rd.tag;
      const renew = async (): Promise<void> => {
        this.checkOpen(delivery);
        const until = await this.renewLock(state.live, lockToken);
        if (!delivery.settled) schedule(until);
      };
      const schedule = (until: number | undefined): void => {
        if (delivery.renewTimer !== undefined) clearTimeout(delivery.renewTimer);
        const wait = until === undefined ? 10_000 : Math.max(500, (until - Date.now()) / 2);
        delivery.renewTimer = setTimeout(() => {
          renew().catch((err) => this.logger.warn({ err: errorMessage(err), id: delivery.id }, 'amqp1 lock renewal failed'));
        }, wait);
        delivery.renewTimer.unref();
      };
      const lockedUntil = message.message_annotations?.['x-opt-locked-until'];
      schedule(lockedUntil instanceof Date ? lockedUntil.getTime() : typeof lockedUntil === 'number' ? lockedUntil : undefined);
      delivery.touch = renew;
    }
    void address;
    this.onDelivery(delivery);
  }

  /** @internal the receiver a delivery came on is still the one in use, on the live connection */
  isLive(state: ReceiverState): boolean {
    return this.rx === state && state.open && this.conn.liveConnection() === state.live;
  }

  /** @internal throws E_STALE_DELIVERY when the delivery cannot be settled or renewed any more */
  checkOpen(d: Amqp1Delivery): void {
    if (d.settled) throw new JobrunnerError('E_STALE_DELIVERY', `delivery ${d.id} of ${this.name} is settled already`);
    if (!this.isLive(d.state)) {
      throw this.staleError(d.id);
    }
  }

  private staleError(id: string): JobrunnerError {
    return new JobrunnerError('E_STALE_DELIVERY', `delivery ${id} of ${this.name} belongs to a connection or link that is gone; the broker redelivers it`);
  }

  /** @internal settles a delivery once (ack / reject) */
  finishDelivery(d: Amqp1Delivery, outcome: Outcome): Promise<void> {
    try {
      this.checkOpen(d);
    } catch (err) {
      return Promise.reject(err);
    }
    d.settled = true;
    if (d.renewTimer !== undefined) clearTimeout(d.renewTimer);
    return this.queueSettlement(d.state, d.rd, outcome, d.id);
  }

  /**
   * Settlements are written in batches, one batch per turn of the event loop (setImmediate), for two
   * reasons. rhea 3.0.5 writes the dispositions of one tick as ranges and gives a range the first
   * delivery's outcome even when the next one differs (write_dispositions merges when first === last):
   * an ack and a reject settled in the same tick would both go out as the ack. So accepted outcomes
   * share a batch and any other outcome goes alone in a batch of its own (the two take turns). And rhea merges only
   * consecutive delivery ids: the answers of several workers come in separate I/O callbacks (worker A
   * acks 1, 3, 5, worker B 2, 4, 6), so settling each at once made one disposition frame per message;
   * gathered until the loop's check phase and sorted, they go out as a few ranges (issue 7).
   */
  private queueSettlement(state: ReceiverState, rd: RheaDelivery, outcome: Outcome, id: string): Promise<void> {
    return new Promise<void>((done, fail) => {
      (outcome.kind === 'accepted' ? state.accepts : state.others).push({ rd, outcome, id, done, fail });
      this.scheduleFlush(state);
    });
  }

  private scheduleFlush(state: ReceiverState): void {
    if (state.flushScheduled) return;
    state.flushScheduled = true;
    setImmediate(() => this.flushSettlements(state));
  }

  private flushSettlements(state: ReceiverState): void {
    state.flushScheduled = false;
    const live = this.isLive(state);
    let batch: PendingSettle[];
    // accepted and other outcomes take turns, so a steady stream of acks cannot hold a reject back
    if (state.accepts.length > 0 && !(state.lastFlushAccepted && state.others.length > 0)) {
      batch = state.accepts;
      state.accepts = [];
      state.lastFlushAccepted = true;
      if (batch.length > 1) batch.sort((a, b) => a.rd.id - b.rd.id);
    } else {
      batch = state.others.splice(0, 1);
      state.lastFlushAccepted = false;
    }
    for (const p of batch) {
      if (!live) {
        p.fail(this.staleError(p.id));
        continue;
      }
      this.settle(state, p.rd, p.outcome);
      p.done();
    }
    // credit back for what this batch freed, while consuming
    if (live && this.consuming) this.topUpCredit(state, false);
    if (state.accepts.length > 0 || state.others.length > 0) this.scheduleFlush(state);
  }

  private settle(state: ReceiverState, rd: RheaDelivery, outcome: Outcome): void {
    switch (outcome.kind) {
      case 'accepted':
        rd.accept();
        break;
      case 'released':
        rd.release();
        break;
      case 'modified': {
        const params: { delivery_failed: boolean; undeliverable_here: boolean; message_annotations?: Record<string, unknown> } = {
          delivery_failed: outcome.deliveryFailed,
          undeliverable_here: outcome.undeliverableHere,
        };
        if (outcome.annotations !== undefined) params.message_annotations = outcome.annotations;
        rd.modified(params);
        break;
      }
      case 'rejected': {
        if (outcome.condition === undefined) rd.reject();
        else {
          const error: { condition: string; description?: string; info?: Record<string, unknown> } = { condition: outcome.condition };
          if (outcome.description !== undefined) error.description = outcome.description;
          if (outcome.info !== undefined) error.info = outcome.info;
          rd.reject(error);
        }
        break;
      }
    }
    state.unsettled = Math.max(0, state.unsettled - 1);
  }

  private async renewLock(live: LiveConnection, lockToken: Buffer | string): Promise<number | undefined> {
    this.sbManagement ??= new ManagementLink(live.connection, `${this.queue}/$management`, 'servicebus');
    const rhea = (await import('rhea')).default;
    const token = Buffer.isBuffer(lockToken) ? lockToken : Buffer.from(lockToken);
    const res = await this.sbManagement.request(
      {
        properties: { operation: 'com.microsoft:renew-lock' },
        body: { 'lock-tokens': rhea.types.wrap_array([token], 0x98, undefined) },
      },
      'E_BROKER_CLOSED',
    );
    if (res.status !== 200) throw new JobrunnerError('E_BROKER_CLOSED', `renew-lock answered ${res.status}${res.description ? `: ${res.description}` : ''}`);
    const exp = (res.body as { expirations?: unknown[] } | undefined)?.expirations?.[0];
    return exp instanceof Date ? exp.getTime() : typeof exp === 'number' ? exp : undefined;
  }

  private passiveCheck(live: LiveConnection, address: string): Promise<void> {
    const session = live.connection.create_session();
    session.begin();
    const receiver = session.attach_receiver({ source: { address }, credit_window: 0, autoaccept: false });
    const d = deferred<void>();
    const timer = setTimeout(() => d.reject(new JobrunnerError('E_BROKER_DECLARE', `${address} did not attach within 10000 ms`)), 10_000);
    // a refusing broker answers the attach with a null source and detaches right after (RabbitMQ,
    // Service Bus): wait for that detach, and give an accepted attach a moment to be closed
    receiver.on('receiver_open', () => {
      const remote = (receiver as unknown as { remote?: { attach?: { source?: unknown } } }).remote?.attach;
      if (remote !== undefined && (remote.source === null || remote.source === undefined)) return;
      setTimeout(() => d.resolve(), 100);
    });
    const fail = (err: unknown): void =>
      d.reject(new JobrunnerError('E_BROKER_DECLARE', `${address} cannot be consumed: ${describeAmqpError(err)} (amqp1 does not declare queues on this broker: create it first)`));
    receiver.on('receiver_close', (ctx) => fail(ctx.receiver?.error));
    receiver.on('receiver_error', (ctx) => fail(ctx.receiver?.error));
    session.on('session_error', (ctx) => fail(ctx.session?.error));
    return d.promise.finally(() => {
      clearTimeout(timer);
      try {
        session.close();
      } catch {
        // gone
      }
    });
  }

  // ---- publishing ----

  private async delayAddress(live: LiveConnection, kind: BrokerKind, delayMs: number): Promise<string> {
    if (this.options.address !== undefined) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.name}: delays need a queue or exchange, not a raw address`);
    }
    if (kind === 'rabbitmq4') {
      const name = await declareDelayQueue(live.rabbitManagement(), this.options, delayMs, this.declaredDelays);
      return `/queues/${encodeURIComponent(name)}`;
    }
    // RabbitMQ 3.x over AMQP 1.0 cannot declare a queue with arguments: use one that exists
    return `/amq/queue/${delayQueueName(this.queue, delayMs)}`;
  }

  private senderFor(live: LiveConnection, address: string): Promise<Sender> {
    if (this.tx === undefined || this.tx.live !== live) {
      const session = live.connection.create_session();
      session.begin();
      const state: SenderState = { live, session, senders: new Map() };
      this.tx = state;
      // RabbitMQ ends the whole session when a target does not exist (3.x on the first transfer,
      // 4.x at attach): fail what waits on it and start a new session next time
      const ended = (ctx: { session?: Session }): void => {
        if (this.tx === state) this.tx = undefined;
        const e = errorFor(describeAmqpError(ctx.session?.error), [...state.senders.keys()].join(', '), this.name);
        for (const p of this.pendingPublishes) p.reject(e);
        for (const s of state.senders.values()) s.emit('jobrunner_gone', e);
        state.senders.clear();
      };
      session.on('session_error', ended);
      session.on('session_close', ended);
    }
    const tx = this.tx;
    const existing = tx.senders.get(address);
    if (existing !== undefined && existing.is_open() && existing.sendable()) return Promise.resolve(existing);
    const d = deferred<Sender>();
    let sender = existing;
    if (sender === undefined || sender.is_closed()) {
      sender = tx.session.attach_sender({ target: { address }, autosettle: true });
      tx.senders.set(address, sender);
      const s = sender;
      const outcome = (what: string) => (ctx: { delivery?: RheaDelivery }) => {
        const p = (ctx.delivery as unknown as { jobrunnerPublish?: Deferred<void> } | undefined)?.jobrunnerPublish;
        if (p === undefined) return;
        if (what === 'accepted') p.resolve();
        else p.reject(new JobrunnerError('E_PUBLISH', `${address} answered ${what}${describeState(ctx.delivery)}`));
      };
      for (const o of ['accepted', 'rejected', 'released', 'modified']) s.on(o, outcome(o));
      const closed = (ctx: { sender?: Sender }): void => {
        if (tx.senders.get(address) === s) tx.senders.delete(address);
        const e = errorFor(describeAmqpError(ctx.sender?.error), address, this.name);
        // a closed link has no dispositions to wait for
        for (const p of this.pendingPublishes) p.reject(e);
        s.emit('jobrunner_gone', e);
      };
      s.on('sender_close', closed);
      s.on('sender_error', closed);
    }
    const s = sender;
    if (s.sendable()) d.resolve(s);
    const onSendable = (): void => {
      s.off('sendable', onSendable);
      d.resolve(s);
    };
    s.on('sendable', onSendable);
    const onGone = (e: unknown): void => d.reject(e);
    s.on('jobrunner_gone', onGone);
    const timer = setTimeout(() => d.reject(new JobrunnerError('E_PUBLISH', `no credit to publish to ${address} within ${this.waitMs} ms`)), this.waitMs);
    return d.promise.finally(() => {
      clearTimeout(timer);
      s.off('sendable', onSendable);
      s.off('jobrunner_gone', onGone);
    });
  }
}

function errorFor(why: string, address: string, pipeline: string): JobrunnerError {
  if (/not[-_ ]found|no queue/i.test(why) && /jobrunner\.delay\./.test(`${address} ${why}`)) {
    return new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${pipeline}: the delay queue does not exist and RabbitMQ 3.x cannot declare it over AMQP 1.0 (${why})`);
  }
  return new JobrunnerError('E_PUBLISH', `publishing to ${address || 'the broker'} failed: ${why}`);
}

function describeState(delivery: RheaDelivery | undefined): string {
  const state = delivery?.remote_state as { error?: unknown } | undefined;
  return state?.error === undefined ? '' : `: ${describeAmqpError(state.error)}`;
}

/**
 * Sets the link credit to 0 (AMQP 1.0 2.6.7: the receiver may lower the credit it granted). Used instead
 * of a drain on RabbitMQ 3.x, whose AMQP 1.0 plugin ends the whole session when it answers a drain
 * (`function_clause` in rabbit_classic_queue send_drained, seen on 3.10): the settlements of the jobs
 * still held went down with it. rhea has no call for it, so its fields are set as its flow() does.
 */
function revokeCredit(receiver: Receiver): void {
  const r = receiver as unknown as { credit: number; issue_flow: boolean; connection: { _register(): void } };
  r.credit = 0;
  r.issue_flow = true;
  r.connection._register();
}

const ACCEPTED: Outcome = { kind: 'accepted' };

/** A received message as the pipeline's Delivery: the decoded job fields, settled through its pipeline. */
class Amqp1Delivery extends DeliveryBase {
  declare touch?: () => Promise<void>;
  settled = false;
  renewTimer: NodeJS.Timeout | undefined = undefined;

  constructor(
    private readonly pipe: Amqp1Pipeline,
    readonly state: ReceiverState,
    readonly rd: RheaDelivery,
    private readonly kind: BrokerKind,
    j: ReturnType<typeof decodeMessageSafely>,
  ) {
    super(j);
  }

  ack(): Promise<void> {
    return this.pipe.finishDelivery(this, ACCEPTED);
  }

  reject(requeue: boolean, reason?: string): Promise<void> {
    return this.pipe.finishDelivery(this, rejectOutcome(this.kind, requeue, reason));
  }

  live(): boolean {
    return this.pipe.isLive(this.state);
  }
}
