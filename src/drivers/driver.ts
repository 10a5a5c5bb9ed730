// The driver interface: what src/pipelines/ sees of a broker. One DriverConnection per driver kind
// (a pipeline group sharing one connection); one BrokerPipeline per configured pipeline; one
// DriverDescriptor per driver folder (src/drivers/<name>/index.ts), listed in src/drivers/registry.ts.
// Drivers turn broker messages into Deliveries and OutgoingJobs into broker messages (the wire format);
// they never decide retries or dead letters: src/pipelines/ does, through ack / reject / retryLater /
// publish, choosing by the Capabilities a driver declares, never by its name.

import type { EventEmitter } from 'node:events';
import type { DriverName, PipelineConfig, PipelineOptionsBase } from '../config/types.js';
import type { Logger } from '../observability/logger.js';

export type Headers = Record<string, string[]>;

/** A delivered message as a job, driver-neutral. */
export interface Job {
  /** rr_id, else message_id, else a new UUID */
  id: string;
  /** rr_job, else the type property (AMQP 1.0: subject), else the pipeline's `job`, else the pipeline name */
  job: string;
  body: Buffer;
  contentType?: string;
  /** rr_headers merged with every other header / application property, as strings */
  headers: Headers;
  /** 1 for a first delivery: max(x-jobrunner-attempt, the broker's delivery count) */
  attempt: number;
  redelivered: boolean;
  priority?: number;
  traceparent?: string;
  /** the queue or address it came from */
  queue: string;
  /** the message_id property, when the message had one */
  messageId?: string;
}

export interface Delivery extends Job {
  /**
   * Set when the message cannot be turned into a job (e.g. rr_headers that are not JSON): the
   * pipeline dead-letters it with this reason and never hands it to a worker.
   */
  invalid?: string;
  /** settle as done (basic.ack / accepted). Rejects with E_STALE_DELIVERY after a reconnect. */
  ack(): Promise<void>;
  /**
   * requeue=true: back to the queue now (basic.nack requeue / released or modified);
   * requeue=false: the broker's own dead-lettering (basic.nack requeue=false / rejected).
   * Rejects with E_STALE_DELIVERY after a reconnect.
   */
  reject(requeue: boolean, reason?: string): Promise<void>;
  /**
   * Only where the pipeline's capabilities say `retryLater` (e.g. JetStream `nak(delay)`, SQS
   * `ChangeMessageVisibility`): settles this delivery so that the broker itself hands the same message
   * out again after `delayMs`, as the next attempt (the broker's delivery count goes up, and with it
   * Job.attempt). `headers` (a worker's nack headers) are merged into the next delivery's headers where
   * the capability says `headers: true`; settle never passes them otherwise (it re-publishes instead).
   * `delayMs` never exceeds the capability's `maxDelayMs`. Rejects with E_STALE_DELIVERY after a reconnect.
   */
  retryLater?(delayMs: number, headers?: Headers): Promise<void>;
  /**
   * The job is still running (a touch frame). Drivers whose capabilities say `renewal` keep the lock,
   * visibility timeout or ack deadline alive by themselves while the delivery is unsettled (Service
   * Bus renew-lock, SQS visibility extension, JetStream `working()`); touch renews it at once.
   */
  touch?(): Promise<void>;
  /**
   * false once the connection, channel or link the message came on is gone: the broker hands the
   * message out again by itself, so a retry or dead-letter copy published now would be a duplicate.
   * Absent (memory) means always live.
   */
  live?(): boolean;
}

/**
 * The Job fields of a delivery, copied once from a decoded job; each driver extends it with how the
 * message is settled. A class rather than an object spread with closures: one allocation per message
 * on the hot path (issue 7).
 */
export abstract class DeliveryBase implements Delivery {
  readonly id: string;
  readonly job: string;
  readonly body: Buffer;
  readonly headers: Headers;
  readonly attempt: number;
  readonly redelivered: boolean;
  readonly queue: string;
  declare contentType?: string;
  declare priority?: number;
  declare traceparent?: string;
  declare messageId?: string;
  declare invalid?: string;

  constructor(j: Job & { invalid?: string }) {
    this.id = j.id;
    this.job = j.job;
    this.body = j.body;
    this.headers = j.headers;
    this.attempt = j.attempt;
    this.redelivered = j.redelivered;
    this.queue = j.queue;
    if (j.contentType !== undefined) this.contentType = j.contentType;
    if (j.priority !== undefined) this.priority = j.priority;
    if (j.traceparent !== undefined) this.traceparent = j.traceparent;
    if (j.messageId !== undefined) this.messageId = j.messageId;
    if (j.invalid !== undefined) this.invalid = j.invalid;
  }

  abstract ack(): Promise<void>;
  abstract reject(requeue: boolean, reason?: string): Promise<void>;
}

/** A job to publish (push, follow-up, retry, requeue, dead letter to a pipeline). */
export interface OutgoingJob {
  id: string;
  job: string;
  /** the pipeline it is published to (rr_pipeline) */
  pipeline: string;
  body: Buffer;
  contentType: string;
  headers: Headers;
  /** ms; 0 for none */
  delayMs: number;
  priority?: number;
  /** written as x-jobrunner-attempt when set */
  attempt?: number;
  traceparent?: string;
  /** extra transport headers set as they are (e.g. x-jobrunner-dead-reason) */
  extra?: Record<string, string | number | boolean>;
}

export interface ConnectionStatus {
  connected: boolean;
  /** ms epoch of the last change */
  since: number;
  reconnects: number;
  /** the last connection error, redacted */
  error?: string;
  /** the URL in use, redacted */
  url?: string;
  /** set while the broker blocks this connection's publishers (AMQP 0-9-1 connection.blocked): its reason */
  blocked?: string;
}

export interface BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  /** declares the topology as configured (nothing when declare is false but a passive check) */
  declare(): Promise<void>;
  /**
   * Starts consuming; every delivery goes to onDelivery. After a reconnect the driver declares and
   * consumes again by itself while consuming is on.
   */
  consume(onDelivery: (delivery: Delivery) => void): Promise<void>;
  /** stops consuming; deliveries already handed out can still be settled */
  cancel(): Promise<void>;
  /** publishes to this pipeline, resolved when the broker confirms (accepted) */
  publish(job: OutgoingJob): Promise<void>;
  /**
   * What this pipeline's broker can do. Before declare() it answers the descriptor's capabilities; a
   * driver that learns the broker only when it connects (amqp1: RabbitMQ 3 or 4, Service Bus, another
   * broker) narrows them once connected, so src/pipelines/ reads them after declare(). Cheap: settle
   * calls it for every failed job.
   */
  capabilities(): Capabilities;
  /**
   * Only where capabilities().delays is 'existing': resolves when a publish with this delay would be
   * taken (its delay queue exists); otherwise rejects with E_DELAY_UNSUPPORTED whose message names what
   * is missing as a noun phrase ("the delay queue X, which ..., is missing (...)"), for the start-up error.
   */
  checkDelay?(delayMs: number): Promise<void>;
  /** messages ready in the queue, or undefined when the broker cannot tell (capabilities().readyCount false) */
  readyCount(): Promise<number | undefined>;
  /** messages waiting for their delay, where the driver holds them itself (memory) or the broker counts them (SQS); absent otherwise */
  delayedCount?(): number;
  /**
   * Messages any consumer has received and not yet settled, where the broker counts them (SQS's
   * ApproximateNumberOfMessagesNotVisible), as of the last readyCount(); absent otherwise. /pipelines
   * shows it as `reserved`, as RoadRunner does; without it `reserved` is what this daemon holds.
   */
  inFlightCount?(): number | undefined;
  /**
   * Why the broker does not deliver to this pipeline although consume() was called and the connection is
   * up (its queue does not exist or was deleted, the broker cancelled the consumer), naming the queue;
   * undefined while it delivers, while consumption is off, and while the connection is down (its status
   * says so). The driver keeps trying by itself and clears it once it consumes again. Absent: always
   * undefined. /health and /pipelines report `consuming: false` with it.
   */
  consumeError?(): string | undefined;
  /** cancels; deletes the queue if configured (delete_queue_on_stop) */
  close(): Promise<void>;
}

export interface DriverConnection extends Pick<EventEmitter, 'on' | 'off'> {
  readonly driver: DriverName;
  /**
   * Connects. The first attempt's failure is reported (status().error, an E_BROKER_CONNECT log
   * line) and the connection keeps retrying with backoff; start resolves once connected or when
   * `signal` aborts.
   */
  start(signal?: AbortSignal): Promise<void>;
  pipeline(config: PipelineConfig): BrokerPipeline;
  status(): ConnectionStatus;
  /** closes every link/channel and the connection; idempotent */
  stop(): Promise<void>;
}

/** Emitted by DriverConnection as 'status' whenever connected changes. */
export type StatusListener = (status: ConnectionStatus) => void;

/**
 * What a broker can do, in the words src/pipelines/ decides by. A driver declares them once in its
 * descriptor; BrokerPipeline.capabilities() may narrow them once the broker is known.
 */
export interface Capabilities {
  /**
   * The "broker" lives inside the daemon (memory): there is no network connection to lose or redial,
   * and a push from another process must go through the daemon's HTTP API.
   */
  inProcess: boolean;
  /**
   * reject(false) makes the broker dead-letter the message by its own means (an AMQP dead-letter
   * exchange, Service Bus's dead-letter queue, an SQS redrive policy, memory's dead-letter list).
   * false (JetStream): reject(false) terminates the message (`term()`); a pipeline with a `retry` block
   * then needs `dead_letter.pipeline` (refused at start otherwise), one without is told once at start.
   */
  nativeDeadLetter: boolean;
  /**
   * Delivery.retryLater exists: the broker redelivers the same message after a delay by itself
   * (JetStream `nak(delay)`, SQS `ChangeMessageVisibility`). Settle prefers it to re-publish + ack for
   * delays up to maxDelayMs, and only when the worker's nack headers are empty or `headers` is true.
   */
  retryLater: false | { maxDelayMs: number; headers: boolean };
  /**
   * OutgoingJob.delayMs on publish: 'any' delay; 'existing' only through delay queues that already
   * exist (BrokerPipeline.checkDelay tells which, and each must be checked at start); 'none'.
   */
  delays: 'any' | 'existing' | 'none';
  /**
   * Words for the start-up error when delays are not 'any': what cannot delay, what to use instead,
   * and (for 'existing') the page that says how to create the delay queues, e.g.
   * { broker: 'RabbitMQ 3.x over AMQP 1.0', fix: 'use the amqp091 driver or RabbitMQ 4', docs: 'docs/drivers/amqp1-rabbitmq3.md' }.
   */
  delayAdvice?: { broker: string; fix: string; docs?: string };
  /** readyCount() answers a number (the conformance suite then asserts it) */
  readyCount: boolean;
  /**
   * The driver renews a lock, visibility timeout or ack deadline by itself while a delivery is held,
   * and Delivery.touch renews it at once (Service Bus, SQS, JetStream).
   */
  renewal: boolean;
}

/** What a descriptor's option normaliser returns: the driver's options and RoadRunner's pipeline-level keys. */
export interface NormalizedOptions<O extends PipelineOptionsBase = PipelineOptionsBase> {
  options: O;
  /** RoadRunner's requeue_on_fail: without a retry block, a failed job goes back to the queue (false: dead-lettered) */
  requeueOnFail: boolean;
  /** RoadRunner's redial_timeout, ms: how long a lost connection stays healthy while it redials (0: none) */
  redialTimeoutMs: number;
}

/** A schema-valid mapping, with the schema's defaults filled in by ajv. */
export type ConfigMapping = Record<string, unknown>;

/** Messaging attributes of the OpenTelemetry semantic conventions for one pipeline. */
export interface TelemetryAttributes {
  /** messaging.system, e.g. rabbitmq, servicebus, nats, aws_sqs */
  system: string;
  /** messaging.destination.name: the queue, address, subject */
  destination: string;
  /** the system's own attributes, e.g. messaging.rabbitmq.destination.routing_key */
  attributes?: Readonly<Record<string, string>>;
}

/**
 * One driver, as the rest of jobrunner knows it: exported as `descriptor` from src/drivers/<name>/index.ts
 * and listed once in src/drivers/registry.ts. Importing a descriptor must stay cheap: it imports no
 * broker client (connect() imports it when a pipeline uses the driver).
 * O: the driver's pipeline options; S: its connection settings (from its top-level config section).
 */
export interface DriverDescriptor<O extends PipelineOptionsBase = PipelineOptionsBase, S = unknown> {
  /** canonical name: what PipelineConfig.driver holds, in logs, metric labels and /pipelines */
  readonly name: DriverName;
  /** other names `driver:` accepts (RoadRunner's `amqp` for amqp091) */
  readonly aliases: readonly string[];
  /**
   * The top-level config section with the connection settings (`amqp`, `amqp1`, `nats`, `sqs`), with
   * an example for the error when it is missing; absent for a driver without one (memory).
   */
  readonly section?: {
    name: string;
    example: string;
    /**
     * The section may be left out (sqs: credentials and region then come from the standard AWS chain);
     * connect() then gets `section` undefined.
     */
    optional?: boolean;
    /**
     * The scheme the driver's client assumes for an `addr` written as a bare host[:port] (nats: RoadRunner's
     * own docs write `addr: "demo.nats.io"`); such an address is checked as `<scheme>://<addr>`.
     */
    bareHostScheme?: string;
  };
  /** the most this driver can do; BrokerPipeline.capabilities() may narrow it per pipeline */
  readonly capabilities: Capabilities;
  /** the section (schema-valid, defaults filled) as the settings connect() takes */
  normalizeSection?(full: ConfigMapping): S;
  /**
   * A pipeline's `config:` mapping as options. `raw`: as the user wrote it (tells which keys were set,
   * for aliases); `full`: the same with the schema's defaults filled in (read defaults from here only).
   */
  normalizeOptions(input: { pipeline: string; raw: ConfigMapping; full: ConfigMapping }): NormalizedOptions<O>;
  /**
   * Checks the schema cannot express for one pipeline's `config:` (as written); each problem is
   * reported at jobs.pipelines.<name>.<at> as E_CONFIG_REF.
   */
  crossCheck?(raw: ConfigMapping): { at: 'config' | 'driver'; message: string }[];
  /** makes the connection (no I/O until start()); `section` is undefined for a driver without one */
  connect(input: { section: S | undefined; logger: Logger }): Promise<DriverConnection>;
  /** messaging attributes for traces */
  telemetry(p: PipelineConfig<O>): TelemetryAttributes;
}
