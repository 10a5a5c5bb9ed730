// amqp1 publishing: one session per connection for every publish of a pipeline, one sender link per
// target address (the pipeline's address, a delay queue), each publish waiting for the broker's
// disposition (accepted resolves, anything else rejects with what the broker said).

import type { Delivery as RheaDelivery, Message, Sender, Session } from 'rhea';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { deferred, type Deferred } from '../../shared/deferred.js';
import type { LiveConnection } from './live.js';
import { describeAmqpError } from './management.js';

interface SenderState {
  live: LiveConnection;
  session: Session;
  senders: Map<string, Sender>;
}

/** One pipeline's publishing side. */
export class Publisher {
  private tx: SenderState | undefined;
  private readonly pending = new Set<Deferred<void>>();

  /** `waitMs`: how long a publish waits for credit */
  constructor(
    private readonly pipeline: string,
    private readonly waitMs: () => number,
  ) {}

  /** Sends `message` to `address` and waits for the broker's disposition. */
  async send(live: LiveConnection, address: string, message: Message, jobId: string): Promise<void> {
    const sender = await this.senderFor(live, address);
    const d = deferred<void>();
    this.pending.add(d);
    try {
      let delivery;
      try {
        delivery = sender.send(message);
      } catch (err) {
        // rhea encodes before it sends: a TypeError or RangeError is the message's own content
        if (err instanceof TypeError || err instanceof RangeError) throw new JobrunnerError('E_UNPUBLISHABLE', `job ${jobId} cannot be published to ${this.pipeline}: ${errorMessage(err)}`, { cause: err });
        throw err;
      }
      (delivery as unknown as { jobrunnerPublish?: Deferred<void> }).jobrunnerPublish = d;
      await d.promise;
    } finally {
      this.pending.delete(d);
    }
  }

  /**
   * The connection of `generation` is gone: its session too, and no disposition, attach or credit will
   * come. rhea says so only on the connection (no link or session event), so what waits for credit on
   * its senders fails here too, at once: left to its timer it waited redial_timeout, and the job whose
   * follow-up it was stayed unsettled that long (shutdown waited for it).
   */
  onDisconnected(generation: number): void {
    const err = new JobrunnerError('E_PUBLISH', 'the amqp1 connection was lost before the broker confirmed the publish');
    if (this.tx?.live.generation === generation) this.drop(this.tx, err);
    for (const p of this.pending) p.reject(err);
    this.pending.clear();
  }

  /** the pipeline closes: what still waits fails now */
  close(): void {
    const tx = this.tx;
    if (tx !== undefined) {
      try {
        tx.session.close();
      } catch {
        // connection gone
      }
      this.drop(tx, new JobrunnerError('E_PUBLISH', `pipeline ${this.pipeline} is closed`));
    }
    for (const p of this.pending) p.reject(new JobrunnerError('E_PUBLISH', `pipeline ${this.pipeline} is closed before the broker confirmed the publish`));
    this.pending.clear();
  }

  /** forgets a session: its senders' waits for credit fail with `err` */
  private drop(tx: SenderState, err: Error): void {
    if (this.tx === tx) this.tx = undefined;
    for (const s of tx.senders.values()) s.emit('jobrunner_gone', err);
    tx.senders.clear();
  }

  private senderFor(live: LiveConnection, address: string): Promise<Sender> {
    const waitMs = this.waitMs();
    if (this.tx === undefined || this.tx.live !== live) {
      const session = live.connection.create_session();
      session.begin();
      const state: SenderState = { live, session, senders: new Map() };
      this.tx = state;
      // RabbitMQ ends the whole session when a target does not exist (3.x on the first transfer,
      // 4.x at attach): fail what waits on it and start a new session next time
      const ended = (ctx: { session?: Session }): void => {
        if (this.tx === state) this.tx = undefined;
        const e = errorFor(describeAmqpError(ctx.session?.error), [...state.senders.keys()].join(', '), this.pipeline);
        for (const p of this.pending) p.reject(e);
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
        const e = errorFor(describeAmqpError(ctx.sender?.error), address, this.pipeline);
        // a closed link has no dispositions to wait for
        for (const p of this.pending) p.reject(e);
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
    const timer = setTimeout(() => d.reject(new JobrunnerError('E_PUBLISH', `no credit to publish to ${address} within ${waitMs} ms`)), waitMs);
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
