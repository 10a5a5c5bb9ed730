// Request/response over a pair of AMQP 1.0 links: RabbitMQ 4's HTTP-over-AMQP management node
// (`/management`, paired links, reply_to "$me", subject = HTTP method, to = path) and Service Bus's
// per-entity `$management` node (operation application property, e.g. com.microsoft:renew-lock).
// One session of its own, so a slow request never shares flow control with deliveries.

import { randomUUID } from 'node:crypto';
import type { Connection, Message, Receiver, Sender, Session } from 'rhea';
import { JobrunnerError, type ErrorCode } from '../../shared/errors.js';
import { deferred, type Deferred } from '../../shared/deferred.js';
import { adoptDeliveryCount, pairLinks, wrapDeliveryCount } from './rhea-gate.js';

export interface ManagementResponse {
  /** HTTP-like status: RabbitMQ's subject, Service Bus's statusCode property */
  status: number;
  body: unknown;
  properties: Record<string, unknown>;
  description?: string;
}

const RESPONSE_CREDIT = 32;

export type ManagementStyle = 'rabbitmq' | 'servicebus';

export class ManagementLink {
  private session: Session | undefined;
  private sender: Sender | undefined;
  private receiver: Receiver | undefined;
  private opened: Promise<void> | undefined;
  private readonly pending = new Map<string, Deferred<ManagementResponse>>();
  private readonly replyTo: string;
  private closedError: Error | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly address: string,
    private readonly style: ManagementStyle,
    private readonly timeoutMs = 10_000,
  ) {
    this.replyTo = style === 'rabbitmq' ? '$me' : `jobrunner-reply-${randomUUID()}`;
  }

  /** Sends one request and waits for the matching response (by correlation_id). */
  async request(
    fields: { subject?: string; to?: string; properties?: Record<string, unknown>; body: unknown },
    code: ErrorCode = 'E_BROKER_DECLARE',
  ): Promise<ManagementResponse> {
    await this.open(code);
    const sender = this.sender as Sender;
    const receiver = this.receiver as Receiver;
    const id = randomUUID();
    const d = deferred<ManagementResponse>();
    this.pending.set(id, d);
    const timer = setTimeout(() => d.reject(new JobrunnerError(code, `no answer from ${this.address} within ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const msg: Message = { message_id: id, reply_to: this.replyTo, body: fields.body };
      if (fields.subject !== undefined) msg.subject = fields.subject;
      if (fields.to !== undefined) msg.to = fields.to;
      if (fields.properties !== undefined) msg.application_properties = fields.properties;
      sender.send(msg);
      return await d.promise;
    } finally {
      clearTimeout(timer);
      this.pending.delete(id);
    }
  }

  close(): void {
    this.fail(new JobrunnerError('E_BROKER_CLOSED', `management link ${this.address} closed`));
    try {
      this.session?.close();
    } catch {
      // the connection is gone already
    }
  }

  private open(code: ErrorCode): Promise<void> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    if (this.opened !== undefined) return this.opened;
    const d = deferred<void>();
    const session = this.connection.create_session();
    this.session = session;
    session.begin();
    const name = `jobrunner-mgmt-${randomUUID()}`;
    const paired = this.style === 'rabbitmq';
    const common = paired ? { properties: { paired: true }, snd_settle_mode: 1 as const, rcv_settle_mode: 0 as const } : {};
    const sender = session.attach_sender({ name: paired ? name : `${name}-s`, target: { address: this.address }, source: { address: this.replyTo }, ...common });
    const receiver = session.attach_receiver({
      name: paired ? name : `${name}-r`,
      source: { address: this.address },
      target: { address: this.replyTo },
      credit_window: 0,
      autoaccept: true,
      ...common,
    });
    if (paired) pairLinks(session, name, sender, receiver);
    this.sender = sender;
    this.receiver = receiver;
    let opens = 0;
    const onOpen = (): void => {
      opens += 1;
      if (opens === 2) d.resolve();
    };
    const onClose = (what: string, err: unknown): void => {
      const e = new JobrunnerError(code, `management ${what} on ${this.address} closed: ${describeAmqpError(err)}`);
      d.reject(e);
      this.fail(e);
    };
    sender.on('sender_open', onOpen);
    receiver.on('receiver_open', () => {
      adoptDeliveryCount(receiver);
      // RabbitMQ ends the session when a response finds no credit: give it a window up front
      receiver.add_credit(RESPONSE_CREDIT);
      onOpen();
    });
    sender.on('sender_error', (ctx) => onClose('sender', ctx.sender?.error));
    receiver.on('receiver_error', (ctx) => onClose('receiver', ctx.receiver?.error));
    sender.on('sender_close', (ctx) => onClose('sender', ctx.sender?.error));
    receiver.on('receiver_close', (ctx) => onClose('receiver', ctx.receiver?.error));
    session.on('session_error', (ctx) => onClose('session', ctx.session?.error));
    // rejected / released requests answer nothing: fail them instead of waiting for the timeout
    for (const outcome of ['rejected', 'released', 'modified'] as const) {
      sender.on(outcome, () => {
        for (const p of this.pending.values()) p.reject(new JobrunnerError(code, `${this.address} ${outcome} a management request`));
      });
    }
    receiver.on('message', (ctx) => {
      const m = ctx.message;
      wrapDeliveryCount(receiver);
      receiver.add_credit(1);
      if (m === undefined) return;
      const corr = m.correlation_id === undefined ? undefined : Buffer.isBuffer(m.correlation_id) ? m.correlation_id.toString('utf8') : String(m.correlation_id);
      const p = corr === undefined ? undefined : this.pending.get(corr);
      if (p === undefined) return;
      const props: Record<string, unknown> = m.application_properties ?? {};
      const status = this.style === 'rabbitmq' ? Number(m.subject) : Number(props['statusCode'] ?? props['status-code']);
      const description = props['statusDescription'] ?? props['status-description'];
      const res: ManagementResponse = { status, body: m.body, properties: props };
      if (typeof description === 'string') res.description = description;
      p.resolve(res);
    });
    const timer = setTimeout(() => d.reject(new JobrunnerError(code, `management node ${this.address} did not attach within ${this.timeoutMs} ms`)), this.timeoutMs);
    this.opened = d.promise.finally(() => clearTimeout(timer));
    return this.opened;
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** An AMQP error (condition + description) or anything else as one line. */
export function describeAmqpError(err: unknown): string {
  if (err === undefined || err === null) return 'no error given';
  if (typeof err === 'object') {
    const e = err as { condition?: unknown; description?: unknown; message?: unknown };
    const parts = [e.condition, e.description ?? e.message].filter((p) => typeof p === 'string' && p !== '');
    if (parts.length > 0) return parts.join(': ');
  }
  return String(err);
}
