// One amqp1 pipeline, a facade over its parts: the receiver link and its credit (receiver.ts), the
// batched dispositions (settlements.ts), publishing (sender.ts), delays by broker (delays.ts), Service
// Bus lock renewal (servicebus-lock.ts), and declare / readyCount through RabbitMQ 4's management node
// (topology.ts). Re-attaches by itself on every new connection while consuming is on.

import type { Message, Delivery as RheaDelivery } from 'rhea';
import type { PipelineConfig } from '../../config/types.js';
import type { Amqp1PipelineOptions } from './options.js';
import { DeliveryBase, type BrokerPipeline, type Capabilities, type Delivery, type OutgoingJob } from '../driver.js';
import { AMQP1_CAPABILITIES, capabilitiesFor } from './capabilities.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { consumeAddress, effectiveBroker, publishAddress, rejectOutcome, type BrokerKind, type Outcome } from './broker.js';
import { Delays } from './delays.js';
import type { ConnectionHost, LiveConnection } from './live.js';
import { decodeMessageSafely, encodeJob } from './message.js';
import { ReceiverLink, passiveCheck, staleError, type ReceiverOwner, type ReceiverState } from './receiver.js';
import { Publisher } from './sender.js';
import { LockRenewal } from './servicebus-lock.js';
import { declareRabbitTopology, rabbitReadyCount } from './topology.js';

type Amqp1Config = PipelineConfig<Amqp1PipelineOptions>;

export class Amqp1Pipeline implements BrokerPipeline, ReceiverOwner {
  readonly name: string;
  readonly queue: string;
  private readonly options: Amqp1PipelineOptions;
  private onDelivery: ((d: Delivery) => void) | undefined;
  private consuming = false;
  private closed = false;
  /** declare() declared the topology (RabbitMQ 4): declared again before each attach, as amqp091 does */
  private declared = false;
  private readonly receiver: ReceiverLink;
  private readonly publisher: Publisher;
  private readonly delays: Delays;
  private readonly locks: LockRenewal;

  constructor(
    private readonly config: Amqp1Config,
    readonly conn: ConnectionHost,
    readonly logger: Logger,
  ) {
    this.name = config.name;
    this.options = config.options;
    this.queue = config.options.queue;
    this.receiver = new ReceiverLink(this, this.options);
    this.publisher = new Publisher(this.name, () => this.waitMs);
    this.delays = new Delays(this.name, this.options);
    this.locks = new LockRenewal(this.queue, logger);
  }

  private get waitMs(): number {
    return this.config.redialTimeoutMs > 0 ? this.config.redialTimeoutMs : 30_000;
  }

  /** @internal the broker this pipeline talks to on `live` (its `broker:` setting over what was detected) */
  kind(live: LiveConnection): BrokerKind {
    return effectiveBroker(this.options.broker, live.broker);
  }

  /** @internal */
  isConsuming(): boolean {
    return this.consuming;
  }

  /** @internal */
  isClosed(): boolean {
    return this.closed;
  }

  /** @internal before an attach: the queue declared again (a reconnect, a deleted queue), where declare() declared it */
  async beforeAttach(live: LiveConnection): Promise<void> {
    if (this.declared && this.kind(live) === 'rabbitmq4' && this.options.address === undefined) {
      await declareRabbitTopology(live.rabbitManagement(), this.options);
    }
  }

  // ---- lifecycle from the connection ----

  onConnected(live: LiveConnection): void {
    this.delays.reset();
    this.receiver.onConnected(live);
  }

  onDisconnected(generation: number): void {
    this.receiver.onDisconnected(generation);
    this.publisher.onDisconnected(generation);
    this.locks.reset();
  }

  // ---- BrokerPipeline ----

  async declare(): Promise<void> {
    const live = await this.conn.waitConnected(this.waitMs);
    const kind = this.kind(live);
    if (kind === 'rabbitmq4' && this.options.address === undefined) {
      await declareRabbitTopology(live.rabbitManagement(), this.options);
      this.declared = true;
      return;
    }
    // nothing to declare over AMQP 1.0 here: check the source exists by attaching with no credit
    await passiveCheck(live, consumeAddress(kind, this.options));
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
    await this.delays.check(await this.conn.waitConnected(this.waitMs), delayMs);
  }

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_BROKER_CLOSED', `pipeline ${this.name} is closed`);
    this.onDelivery = onDelivery;
    this.consuming = true;
    await this.receiver.resume();
  }

  async cancel(): Promise<void> {
    this.consuming = false;
    this.receiver.stop();
  }

  consumeError(): string | undefined {
    return this.consuming && this.conn.liveConnection() !== undefined ? this.receiver.failure : undefined;
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
    let annotations: Record<string, unknown> = {};
    if (job.delayMs > 0) ({ address, annotations } = await this.delays.route(live, kind, address, job.delayMs));
    const message = encodeJob(job, {
      durable: this.options.durable,
      defaultPriority: this.options.priority,
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    });
    await this.publisher.send(live, address, message, job.id);
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
    await this.receiver.close();
    this.publisher.close();
    this.locks.close();
  }

  // ---- deliveries ----

  /** @internal a message arrived on the receiver link */
  onMessage(state: ReceiverState, kind: BrokerKind, message: Message, rd: RheaDelivery): void {
    if (!this.consuming || this.onDelivery === undefined) {
      // arrived after cancel(): give it back at once
      state.settlements.queue(rd, kind === 'rabbitmq3' || kind === 'generic' ? { kind: 'released' } : { kind: 'modified', deliveryFailed: false, undeliverableHere: false }, 'late').catch(() => undefined);
      return;
    }
    const delivery = new Amqp1Delivery(this, state, rd, kind, decodeMessageSafely(message, { pipeline: this.name, pipelineJob: this.config.job, queue: this.queue }));
    if (kind === 'servicebus') delivery.touch = this.locks.watch(delivery, state.live, rd, message, () => this.checkOpen(delivery));
    this.onDelivery(delivery);
  }

  /** @internal the receiver a delivery came on is still the one in use, on the live connection */
  isLive(state: ReceiverState): boolean {
    return this.receiver.isLive(state);
  }

  /** @internal throws E_STALE_DELIVERY when the delivery cannot be settled or renewed any more */
  checkOpen(d: Amqp1Delivery): void {
    if (d.settled) throw new JobrunnerError('E_STALE_DELIVERY', `delivery ${d.id} of ${this.name} is settled already`);
    if (!this.isLive(d.state)) throw staleError(this.name, d.id);
  }

  /** @internal settles a delivery once (ack / reject), in the next settlement batch */
  finishDelivery(d: Amqp1Delivery, outcome: Outcome): Promise<void> {
    try {
      this.checkOpen(d);
    } catch (err) {
      return Promise.reject(err);
    }
    d.settled = true;
    if (d.renewTimer !== undefined) clearTimeout(d.renewTimer);
    return d.state.settlements.queue(d.rd, outcome, d.id);
  }
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
