// The driver interface: what src/pipelines/ sees of a broker. One DriverConnection per driver kind
// (a pipeline group sharing one connection); one BrokerPipeline per configured pipeline.
// Drivers turn broker messages into Deliveries and OutgoingJobs into broker messages (SPEC §6);
// they never decide retries or dead letters: src/pipelines/ does, through ack / reject / publish.

import type { EventEmitter } from 'node:events';
import type { DriverName, PipelineConfig } from '../config/types.js';

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
  /** the job is still running (a touch frame): brokers with locks renew them (Service Bus) */
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
  /** messages ready in the queue, or undefined when the broker cannot tell */
  readyCount(): Promise<number | undefined>;
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
