// One sqs pipeline: declares (or finds) its queue, consumes with long polls (up to 10 messages a request,
// as many requests at once as prefetch leaves room for), settles through batched requests, keeps held
// messages invisible while their jobs run, publishes in RoadRunner's format. On a FIFO queue the
// messages of one MessageGroupId are handed out one at a time, in order.
//
// Settlement (a delivery is the received message itself; the receipt handle is its key):
//   ack                -> DeleteMessage (batched per loop pass)
//   reject(true)       -> ChangeMessageVisibility(0): back now, ApproximateReceiveCount + 1
//   retryLater(ms)     -> ChangeMessageVisibility(ms): the same message again, as the next attempt
//   reject(false)      -> retain_failed_jobs: left for error_visibility_timeout; else with a RedrivePolicy:
//                         handed back to SQS until SQS moves it into the dead-letter queue (it never
//                         reaches a worker again); else deleted, which the pipeline says at start.

import { CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { PipelineConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import { backoffDelay, type BackoffPolicy } from '../../shared/backoff.js';
import { JobrunnerError } from '../../shared/errors.js';
import { DeliveryBase, type BrokerPipeline, type Capabilities, type Delivery, type Headers, type OutgoingJob } from '../driver.js';
import { SQS_CAPABILITIES, SQS_FIFO_CAPABILITIES } from './capabilities.js';
import { Batcher, EntryError } from './batcher.js';
import { awsCode, asError, describeError, isMissingQueue, isStaleHandle } from './client.js';
import { GROUP_HEADER, decodeMessage, dueOf, encodeJob, type DecodedJob } from './codec.js';
import { MAX_VISIBILITY_S, isFifo, type SqsPipelineOptions } from './options.js';

/** SQS counts 12 hours of invisibility from the first receive; stay a little under it. */
const VISIBILITY_BUDGET_MS = (MAX_VISIBILITY_S - 60) * 1000;
/** How long close() waits for settlements in flight. */
const CLOSE_WAIT_MS = 10_000;
/** Between two short polls (wait_time_seconds: 0) that found the queue empty. */
const SHORT_POLL_PAUSE_MS = 1000;
/** Message ids given up on, waiting for SQS's redrive to take them: bounded, oldest forgotten first. */
const MAX_DOOMED = 10_000;

/** What a pipeline needs of its connection (src/drivers/sqs/connection.ts), without importing it. */
export interface SqsPipelineHost {
  readonly client: SQSClient;
  readonly logger: Logger;
  readonly backoff: BackoffPolicy;
  readonly maxNativeDelayS: number;
  /** a request reached SQS */
  noteOk(): void;
  /** a request failed */
  noteFailure(err: unknown): void;
  /** the pipeline closed */
  forget(p: SqsPipeline): void;
}

export type SqsPipelineConfig = PipelineConfig<SqsPipelineOptions>;

interface Redrive {
  deadLetterTargetArn: string;
  maxReceiveCount: number;
}

export class SqsPipeline implements BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  private readonly o: SqsPipelineOptions;
  private readonly fifo: boolean;
  private readonly batcher: Batcher;
  private url: string | undefined;
  private declaring: Promise<void> | undefined;
  /** effective visibility timeout, seconds: the option, else the queue's */
  private visibilityS = 30;
  private redrive: Redrive | undefined;
  private consuming = false;
  private closed = false;
  private onDelivery: ((d: Delivery) => void) | undefined;
  private polls = 0;
  /** messages asked for by the polls in flight */
  private asked = 0;
  private pollFailures = 0;
  /** the last poll found nothing: one poll at a time until one brings messages */
  private idle = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** received and not settled, by receipt handle (deliveries, and messages being re-delayed) */
  private readonly held = new Map<string, SqsDelivery>();
  private internal = 0;
  /** FIFO: per MessageGroupId, the received messages waiting for the one being worked on */
  private readonly groups = new Map<string, SqsDelivery[]>();
  private readonly doomed = new Map<string, true>();
  private extendTimer: NodeJS.Timeout | undefined;
  private counts = { delayed: undefined as number | undefined, inFlight: undefined as number | undefined };
  private readonly closeController = new AbortController();
  /** settlements and sends asked for and not answered yet: close() lets them land */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    readonly conn: SqsPipelineHost,
    readonly config: SqsPipelineConfig,
  ) {
    this.name = config.name;
    this.o = config.options;
    this.queue = this.o.queue;
    this.fifo = isFifo(this.o.queue);
    this.batcher = new Batcher({ send: (c, what) => this.send(c, what), queueUrl: () => this.url as string });
  }

  /** @internal every request goes through here: the connection learns whether SQS was reached */
  async send<T>(command: object, what: string, signal?: AbortSignal): Promise<T> {
    try {
      const out = (await this.conn.client.send(command as never, signal === undefined ? {} : { abortSignal: signal })) as T;
      this.conn.noteOk();
      return out;
    } catch (err) {
      this.conn.noteFailure(err);
      throw new WrappedAwsError(what, err);
    }
  }

  /** FIFO queues take no per-message delay: a push with one is refused (E_DELAY_UNSUPPORTED) */
  capabilities(): Capabilities {
    return this.fifo ? SQS_FIFO_CAPABILITIES : SQS_CAPABILITIES;
  }

  declare(): Promise<void> {
    this.declaring ??= this.doDeclare().finally(() => (this.declaring = undefined));
    return this.declaring;
  }

  private async doDeclare(): Promise<void> {
    const o = this.o;
    if (o.declare) {
      const attributes = { ...o.attributes };
      if (this.fifo && attributes['FifoQueue'] === undefined) attributes['FifoQueue'] = 'true';
      try {
        const out = await this.send<{ QueueUrl?: string }>(
          new CreateQueueCommand({
            QueueName: o.queue,
            ...(Object.keys(attributes).length > 0 ? { Attributes: attributes } : {}),
            ...(Object.keys(o.tags).length > 0 ? { tags: o.tags } : {}),
          }),
          'CreateQueue',
        );
        this.url = out.QueueUrl;
      } catch (err) {
        const code = awsCode(cause(err));
        // the queue exists with other attributes: use it as it is, as RoadRunner does
        if (code !== 'QueueNameExists' && code !== 'QueueAlreadyExists' && code !== 'AWS.SimpleQueueService.QueueNameExists') {
          throw asError('E_BROKER_DECLARE', `pipeline ${this.name}: cannot declare queue "${o.queue}"`, cause(err));
        }
        this.conn.logger.warn({ pipeline: this.name }, `sqs queue "${o.queue}" exists with other attributes: using it as it is`);
        await this.lookUp();
      }
    } else {
      await this.lookUp();
    }
    await this.readQueue();
  }

  private async lookUp(): Promise<void> {
    try {
      this.url = (await this.send<{ QueueUrl?: string }>(new GetQueueUrlCommand({ QueueName: this.o.queue }), 'GetQueueUrl')).QueueUrl;
    } catch (err) {
      const what = isMissingQueue(cause(err)) ? `queue "${this.o.queue}" does not exist (skip_queue_declaration / declare: false needs an existing queue)` : `cannot find queue "${this.o.queue}"`;
      throw asError('E_BROKER_DECLARE', `pipeline ${this.name}: ${what}`, cause(err));
    }
  }

  /** The queue's visibility timeout and redrive policy, and what a given-up job becomes (said once). */
  private async readQueue(): Promise<void> {
    let attrs: Record<string, string> = {};
    try {
      const out = await this.send<{ Attributes?: Record<string, string> }>(
        new GetQueueAttributesCommand({ QueueUrl: this.url, AttributeNames: ['VisibilityTimeout', 'RedrivePolicy'] }),
        'GetQueueAttributes',
      );
      attrs = out.Attributes ?? {};
    } catch (err) {
      throw asError('E_BROKER_DECLARE', `pipeline ${this.name}: cannot read the attributes of queue "${this.o.queue}"`, cause(err));
    }
    const queueVisibility = Number(attrs['VisibilityTimeout'] ?? '30');
    this.visibilityS = this.o.visibilityTimeoutS > 0 ? this.o.visibilityTimeoutS : Number.isFinite(queueVisibility) && queueVisibility > 0 ? queueVisibility : 30;
    this.redrive = parseRedrive(attrs['RedrivePolicy']);
    if (this.config.deadLetter !== undefined) return;
    const log = this.conn.logger;
    if (this.o.retainFailedJobs) {
      log.info({ pipeline: this.name }, `sqs: a job given up on stays in queue "${this.o.queue}" (retain_failed_jobs) and runs again after ${this.o.errorVisibilityTimeoutS || this.visibilityS} s${this.redrive ? `, until SQS's redrive moves it after ${this.redrive.maxReceiveCount} receives` : ''}`);
    } else if (this.redrive !== undefined) {
      log.info({ pipeline: this.name }, `sqs: a job given up on goes to the queue's dead-letter queue ${this.redrive.deadLetterTargetArn} (SQS moves it after ${this.redrive.maxReceiveCount} receives)`);
    } else {
      log.warn(
        { pipeline: this.name },
        `sqs: queue "${this.o.queue}" has no RedrivePolicy and the pipeline no dead_letter.pipeline: a job given up on (retry.max_attempts reached, or a nack with requeue: false) is deleted. Set attributes.RedrivePolicy, dead_letter.pipeline or retain_failed_jobs: true to keep it`,
      );
    }
  }

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_INTERNAL', `pipeline ${this.name} is closed`);
    if (this.url === undefined) await this.declare();
    this.onDelivery = onDelivery;
    this.consuming = true;
    this.pump();
  }

  /**
   * Stops handing out messages. Polls in flight are not aborted (an aborted long poll can still take
   * messages, which then stay invisible for the whole visibility timeout): what they bring back is
   * handed back at once, or handed out if consuming resumes first.
   */
  async cancel(): Promise<void> {
    this.consuming = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  async publish(job: OutgoingJob): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_PUBLISH', `pipeline ${this.name} is closed`);
    if (this.fifo && job.delayMs > 0) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${this.name}: SQS FIFO queues take no per-message delay (job ${job.id} asked for ${job.delayMs} ms)`);
    }
    if (this.url === undefined) {
      try {
        await this.declare();
      } catch (err) {
        throw asError('E_PUBLISH', `pipeline ${this.name}: cannot publish job ${job.id}`, err);
      }
    }
    const entry = encodeJob(job, { fifo: this.fifo, priority: this.o.priority, messageGroupId: this.o.messageGroupId, pipeline: this.name, now: Date.now(), maxNativeDelayS: this.conn.maxNativeDelayS });
    try {
      await this.batcher.send(entry);
    } catch (err) {
      throw asError('E_PUBLISH', `SQS did not take job ${job.id} to ${this.name}`, cause(err));
    }
  }

  async readyCount(): Promise<number | undefined> {
    if (this.url === undefined) return undefined;
    try {
      const out = await this.send<{ Attributes?: Record<string, string> }>(
        new GetQueueAttributesCommand({
          QueueUrl: this.url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed', 'ApproximateNumberOfMessagesNotVisible'],
        }),
        'GetQueueAttributes',
      );
      const a = out.Attributes ?? {};
      this.counts = { delayed: numberOr(a['ApproximateNumberOfMessagesDelayed']), inFlight: numberOr(a['ApproximateNumberOfMessagesNotVisible']) };
      return numberOr(a['ApproximateNumberOfMessages']);
    } catch {
      return undefined;
    }
  }

  /** messages waiting for their delay (ApproximateNumberOfMessagesDelayed), as of the last readyCount() */
  delayedCount(): number {
    return this.counts.delayed ?? 0;
  }

  /** messages received by any consumer and not yet deleted or visible again (NotVisible), as of the last readyCount() */
  inFlightCount(): number | undefined {
    return this.counts.inFlight;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cancel();
    clearInterval(this.extendTimer);
    this.extendTimer = undefined;
    // acks and releases already asked for land before the client goes (bounded: SQS may be unreachable)
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    // polls in flight end now (what they took comes back after the visibility timeout); settlements
    // already asked for still go out
    this.closeController.abort();
    for (const d of this.held.values()) d.lost = true;
    this.held.clear();
    this.groups.clear();
    this.conn.forget(this);
  }

  // ---- consuming ------------------------------------------------------------------------------------

  /** Starts polls while there is room: prefetch bounds held messages plus those asked for. */
  private pump(): void {
    if (!this.consuming || this.closed || this.url === undefined || this.retryTimer !== undefined) return;
    // an empty queue is watched by one long poll; messages bring the others back
    const maxPolls = this.idle ? 1 : Math.min(10, Math.max(1, Math.ceil(this.o.prefetch / 10)));
    while (this.polls < maxPolls) {
      const room = this.o.prefetch - this.held.size - this.internal - this.asked;
      if (room <= 0) return;
      this.poll(Math.min(10, room));
    }
  }

  private poll(ask: number): void {
    this.polls++;
    this.asked += ask;
    const command = new ReceiveMessageCommand({
      QueueUrl: this.url,
      MaxNumberOfMessages: ask,
      // 0: RoadRunner's meaning, the queue's own ReceiveMessageWaitTimeSeconds
      ...(this.o.waitTimeSeconds > 0 ? { WaitTimeSeconds: this.o.waitTimeSeconds } : {}),
      ...(this.o.visibilityTimeoutS > 0 ? { VisibilityTimeout: this.o.visibilityTimeoutS } : {}),
      MessageAttributeNames: ['All'],
      MessageSystemAttributeNames: ['All'],
    });
    this.send<{ Messages?: Message[] }>(command, 'ReceiveMessage', this.closeController.signal).then(
      (out) => {
        this.polls--;
        this.asked -= ask;
        this.pollFailures = 0;
        const at = Date.now();
        const got = out.Messages ?? [];
        this.idle = got.length === 0;
        for (const m of got) this.onMessage(m, at);
        if (got.length === 0 && this.o.waitTimeSeconds === 0 && this.retryTimer === undefined) {
          // short polling on an empty queue: a pause between polls instead of a busy loop of requests
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.pump();
          }, SHORT_POLL_PAUSE_MS);
          return;
        }
        this.pump();
      },
      (err: unknown) => {
        this.polls--;
        this.asked -= ask;
        if (this.closed) return;
        this.pollFailures++;
        const e = cause(err);
        const line = `sqs receive from "${this.o.queue}" failed: ${describeError(e)}`;
        if (this.pollFailures === 1) this.conn.logger.warn({ pipeline: this.name, code: 'E_BROKER_CLOSED' }, line);
        else this.conn.logger.debug({ pipeline: this.name, attempt: this.pollFailures }, line);
        if (this.retryTimer === undefined) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            // the queue was deleted under us: declare it again when we may
            if (isMissingQueue(e) && this.o.declare) void this.declare().then(() => this.pump(), () => this.pump());
            else this.pump();
          }, backoffDelay(this.conn.backoff, this.pollFailures));
        }
      },
    );
  }

  private onMessage(m: Message, receivedAt: number): void {
    const handle = m.ReceiptHandle;
    if (handle === undefined) return;
    if (this.closed) return;
    if (!this.consuming) {
      // brought back by a poll that outlived cancel(): hand it back
      this.release(handle);
      return;
    }
    if (m.MessageId !== undefined && this.doomed.has(m.MessageId)) {
      // given up on: back to SQS until its redrive policy moves it to the dead-letter queue
      this.release(handle);
      return;
    }
    const due = this.fifo ? undefined : dueOf(m);
    if (due !== undefined && due > receivedAt) {
      this.redelay(m, handle, due);
      return;
    }
    const job = decodeMessage(m, { pipeline: this.name, pipelineJob: this.config.job, queue: this.queue });
    const d = new SqsDelivery(this, handle, m.MessageId, m.Attributes?.[GROUP_HEADER], receivedAt, receivedAt + this.visibilityS * 1000, job);
    this.held.set(handle, d);
    this.ensureExtender();
    if (this.fifo && d.group !== undefined) {
      const waiting = this.groups.get(d.group);
      if (waiting !== undefined) {
        waiting.push(d);
        return;
      }
      this.groups.set(d.group, []);
    }
    this.handOut(d);
  }

  private handOut(d: SqsDelivery): void {
    const handler = this.onDelivery;
    if (handler === undefined || !this.consuming) {
      this.held.delete(d.handle);
      d.lost = true;
      this.afterSettle(d, false);
      this.release(d.handle);
      return;
    }
    try {
      handler(d);
    } catch (err) {
      this.conn.logger.error({ pipeline: this.name }, `delivery handler threw: ${describeError(err)}`);
    }
  }

  /** Visible again at once, not counted as held (the receive count still goes up: SQS counts receives). */
  private release(handle: string): void {
    this.track(this.batcher.changeVisibility(handle, 0)).catch((err: unknown) => this.conn.logger.debug({ pipeline: this.name }, `sqs release: ${describeError(cause(err))}`));
  }

  /** A job delayed past 900 s that is not due yet: sent again with the rest of its delay, then deleted. */
  private redelay(m: Message, handle: string, due: number): void {
    this.internal++;
    const seconds = Math.min(this.conn.maxNativeDelayS, Math.ceil((due - Date.now()) / 1000));
    const attributes = { ...(m.MessageAttributes ?? {}) };
    void this.track(this.batcher.send({ MessageBody: m.Body ?? '', MessageAttributes: attributes, DelaySeconds: Math.max(0, seconds) }).then(() => this.batcher.delete(handle)))
      .catch((err: unknown) => this.conn.logger.warn({ pipeline: this.name, message_id: m.MessageId }, `sqs: cannot re-delay a message due at ${new Date(due).toISOString()} (it comes back after the visibility timeout): ${describeError(cause(err))}`))
      .finally(() => {
        this.internal--;
        this.pump();
      });
  }

  // ---- settlement ------------------------------------------------------------------------------------

  /** @internal a delivery settles: no longer held; on FIFO the next of its group goes out (or back) */
  afterSettle(d: SqsDelivery, acked: boolean): void {
    this.held.delete(d.handle);
    if (this.fifo && d.group !== undefined) {
      const waiting = this.groups.get(d.group);
      if (waiting !== undefined) {
        if (acked) {
          const next = waiting.shift();
          if (next === undefined) this.groups.delete(d.group);
          else this.handOut(next);
        } else {
          // the head of the group comes back: those behind it must not overtake it
          this.groups.delete(d.group);
          for (const w of waiting) {
            this.held.delete(w.handle);
            w.lost = true;
            this.release(w.handle);
          }
        }
      }
    }
    this.pump();
  }

  /** @internal */
  changeVisibility(d: SqsDelivery, seconds: number): Promise<void> {
    return this.track(this.batcher.changeVisibility(d.handle, seconds));
  }

  /** @internal */
  deleteMessage(d: SqsDelivery): Promise<void> {
    return this.track(this.batcher.delete(d.handle));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return p;
  }

  /** @internal reject(false): see the file's head */
  async giveUp(d: SqsDelivery, reason: string | undefined): Promise<void> {
    if (this.o.retainFailedJobs) {
      await this.changeVisibility(d, this.o.errorVisibilityTimeoutS || this.visibilityS);
      return;
    }
    if (this.redrive !== undefined) {
      if (d.messageId !== undefined) {
        if (this.doomed.size >= MAX_DOOMED) {
          const oldest = this.doomed.keys().next().value;
          if (oldest !== undefined) this.doomed.delete(oldest);
        }
        this.doomed.set(d.messageId, true);
      }
      await this.changeVisibility(d, 0);
      return;
    }
    await this.deleteMessage(d);
    this.conn.logger.error({ pipeline: this.name, job_id: d.id, job: d.job, attempt: d.attempt, reason }, `sqs: job deleted: queue "${this.o.queue}" has no RedrivePolicy and the pipeline no dead_letter.pipeline`);
  }

  /** @internal longest visibility still allowed for this delivery (SQS: 12 h from the first receive) */
  maxVisibilityS(d: SqsDelivery): number {
    return Math.max(0, Math.floor((VISIBILITY_BUDGET_MS - (Date.now() - d.receivedAt)) / 1000));
  }

  // ---- visibility extension --------------------------------------------------------------------------

  private ensureExtender(): void {
    if (this.extendTimer !== undefined || !this.o.extendVisibility) return;
    const tick = Math.max(200, Math.min(5000, (this.visibilityS * 1000) / 4));
    this.extendTimer = setInterval(() => this.extend(), tick);
    this.extendTimer.unref();
  }

  /** Pushes the visibility of every held message that has used half of it out by a whole timeout again. */
  private extend(): void {
    if (this.held.size === 0) {
      clearInterval(this.extendTimer);
      this.extendTimer = undefined;
      return;
    }
    const now = Date.now();
    const half = (this.visibilityS * 1000) / 2;
    for (const d of this.held.values()) {
      if (d.extending || d.visibleAt - now > half) continue;
      void this.renew(d);
    }
  }

  /** @internal extends one delivery's visibility by a whole timeout from now */
  async renew(d: SqsDelivery): Promise<void> {
    if (d.extending || d.settled || d.lost) return;
    const seconds = Math.min(this.visibilityS, this.maxVisibilityS(d));
    if (seconds <= 0) {
      if (!d.warnedBudget) {
        d.warnedBudget = true;
        this.conn.logger.warn({ pipeline: this.name, job_id: d.id }, 'sqs: a job has been held for 12 hours, the most SQS allows: it becomes visible again');
      }
      return;
    }
    d.extending = true;
    const at = Date.now();
    try {
      await this.batcher.changeVisibility(d.handle, seconds);
      d.visibleAt = at + seconds * 1000;
    } catch (err) {
      if (isStaleHandle(cause(err))) {
        d.lost = true;
        this.conn.logger.warn({ pipeline: this.name, job_id: d.id }, `sqs: the visibility of a held job could not be extended, SQS hands it out again: ${describeError(cause(err))}`);
      } else {
        this.conn.logger.debug({ pipeline: this.name, job_id: d.id }, `sqs visibility extension failed (tried again): ${describeError(cause(err))}`);
      }
    } finally {
      d.extending = false;
    }
  }
}

/** A received message as a Delivery: settled through its pipeline by receipt handle. */
export class SqsDelivery extends DeliveryBase {
  settled = false;
  /** the receipt handle no longer holds the message (visibility ran out, or the pipeline closed) */
  lost = false;
  extending = false;
  warnedBudget = false;

  constructor(
    private readonly p: SqsPipeline,
    readonly handle: string,
    readonly sqsMessageId: string | undefined,
    readonly group: string | undefined,
    readonly receivedAt: number,
    /** ms epoch when SQS makes it visible again unless extended */
    public visibleAt: number,
    job: DecodedJob,
  ) {
    super(job);
  }

  live(): boolean {
    return !this.lost && Date.now() < this.visibleAt;
  }

  ack(): Promise<void> {
    return this.settle(true, () => this.p.deleteMessage(this));
  }

  reject(requeue: boolean, reason?: string): Promise<void> {
    return this.settle(false, () => (requeue ? this.p.changeVisibility(this, 0) : this.p.giveUp(this, reason)));
  }

  /** The same message again after delayMs, as the next attempt (SQS counts the receive). */
  retryLater(delayMs: number, _headers?: Headers): Promise<void> {
    const seconds = Math.min(Math.ceil(Math.max(0, delayMs) / 1000), this.p.maxVisibilityS(this));
    return this.settle(false, () => this.p.changeVisibility(this, seconds));
  }

  touch(): Promise<void> {
    return this.p.renew(this);
  }

  private async settle(acked: boolean, op: () => Promise<void>): Promise<void> {
    if (this.settled) throw new JobrunnerError('E_STALE_DELIVERY', `delivery ${this.id} of pipeline ${this.p.name} is already settled`);
    this.settled = true;
    this.p.afterSettle(this, acked);
    try {
      await op();
    } catch (err) {
      const e = cause(err);
      const stale = isStaleHandle(e) || e instanceof EntryError;
      throw new JobrunnerError('E_STALE_DELIVERY', `cannot settle job ${this.id}${stale ? ' (SQS no longer holds it for us; it hands it out again)' : ''}: ${describeError(e)}`, { cause: e });
    }
  }
}

/** A failed request, named; the AWS error kept as the cause. */
class WrappedAwsError extends Error {
  constructor(what: string, readonly original: unknown) {
    super(`${what}: ${describeError(original)}`);
    this.name = 'WrappedAwsError';
  }
}

function cause(err: unknown): unknown {
  return err instanceof WrappedAwsError ? err.original : err;
}

function numberOr(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function parseRedrive(v: string | undefined): Redrive | undefined {
  if (v === undefined || v === '') return undefined;
  try {
    const r = JSON.parse(v) as { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
    const max = Number(r.maxReceiveCount);
    if (typeof r.deadLetterTargetArn !== 'string' || !Number.isFinite(max)) return undefined;
    return { deadLetterTargetArn: r.deadLetterTargetArn, maxReceiveCount: max };
  } catch {
    return undefined;
  }
}
