// One live amqp091 broker connection (a Session) and what a pipeline needs of the connection that
// holds it (SessionHost): kept apart from connection.ts so that pipeline.ts and connection.ts do not
// import each other.

import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';

/** What an Amqp091Pipeline uses of its connection (Amqp091Connection). */
export interface SessionHost {
  readonly logger: Logger;
  /** the live session, if any */
  current(): Session | undefined;
  /** the live session, waiting a while for one that is being re-established; undefined after that */
  waitSession(ms?: number): Promise<Session | undefined>;
  /** the pipeline is closed: no more sessionReady / sessionLost calls for it */
  forget(pipeline: object): void;
}

/** One live broker connection and what hangs off it. */
export class Session {
  closed = false;
  private pubPromise: Promise<ConfirmChannel> | undefined;
  /** rejecters of publishes waiting for a confirm, per publish channel */
  readonly pending = new Set<(err: Error) => void>();
  /** message ids the broker returned as unroutable (mandatory publishes); the confirm follows the return */
  readonly returned = new Map<string, number>();
  /** delay queues declared on this connection, with when (ms epoch) */
  readonly delayQueues = new Map<string, number>();

  constructor(
    readonly id: number,
    readonly model: ChannelModel,
    private readonly logger: Logger,
  ) {}

  /** The shared confirm channel, (re)opened on demand: a channel error must not need a reconnect. */
  publishChannel(): Promise<ConfirmChannel> {
    if (this.closed) return Promise.reject(new JobrunnerError('E_PUBLISH', 'the broker connection is closed'));
    if (this.pubPromise !== undefined) return this.pubPromise;
    const p = this.model.createConfirmChannel().then((ch) => {
      ch.on('error', (err: unknown) => this.logger.warn({ code: 'E_BROKER_CLOSED' }, `amqp091 publish channel error: ${errorMessage(err)}`));
      ch.on('return', (msg: { properties: { messageId?: unknown } }) => {
        const id = msg.properties.messageId;
        if (typeof id === 'string') this.returned.set(id, (this.returned.get(id) ?? 0) + 1);
      });
      ch.on('close', () => {
        if (this.pubPromise === p) this.pubPromise = undefined;
        this.failPending('the publish channel closed before the broker confirmed');
      });
      return ch;
    });
    p.catch(() => {
      if (this.pubPromise === p) this.pubPromise = undefined;
    });
    this.pubPromise = p;
    return p;
  }

  /** Runs fn on a short-lived channel, so a failing check or declare cannot kill a shared one. */
  async withChannel<T>(fn: (ch: Channel) => Promise<T>): Promise<T> {
    const ch = await this.model.createChannel();
    ch.on('error', () => undefined); // the rejected call reports it
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** true once for each return of this message id */
  takeReturned(messageId: string): boolean {
    const n = this.returned.get(messageId);
    if (n === undefined) return false;
    if (n <= 1) this.returned.delete(messageId);
    else this.returned.set(messageId, n - 1);
    return true;
  }

  failPending(reason: string): void {
    const rejecters = [...this.pending];
    this.pending.clear();
    for (const r of rejecters) r(new JobrunnerError('E_PUBLISH', reason));
  }
}
