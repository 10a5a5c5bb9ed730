// amqp1 publishing: one session per connection for every publish of a pipeline, one sender link per
// target address (the pipeline's address, a delay queue), each publish waiting for the broker's
// disposition (accepted resolves, anything else rejects with what the broker said).
//
// A publish is handed to rhea only when its link can take it: the broker's link credit left (less what
// rhea holds unsent) and room in rhea's outgoing buffer (2048 deliveries unsent or unconfirmed; past
// that rhea throws "circular buffer overflow"). Until then it waits in its link's queue, in order, for
// rhea's `sendable` event, at most `waitMs`; one that runs out was never handed over, so it fails
// without having been sent. Each link has one listener per event, dispatching to its waiters and to
// the deliveries in flight, whatever the number of publishes (no listener per publish).

import rhea from 'rhea';
import type { Delivery as RheaDelivery, Message, Sender, Session } from 'rhea';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { deferred, type Deferred } from '../../shared/deferred.js';
import type { LiveConnection } from './live.js';
import { describeAmqpError } from './management.js';
import { senderCreditLeft } from './rhea-gate.js';

/** a publish waiting for its link to take it */
interface Waiting {
  payload: Buffer | undefined;
  done: Deferred<void>;
  timer: NodeJS.Timeout;
  /** timed out or failed while waiting: skipped when its turn comes */
  over: boolean;
}

/** One sender link: its publishes waiting for credit, in order, and those sent awaiting an outcome. */
class OutLink {
  private waiting: Waiting[] = [];
  private head = 0;
  private readonly inFlight = new Map<RheaDelivery, Deferred<void>>();
  /** deliveries handed to rhea on this link (rhea counts them against the credit once written) */
  private handed = 0;
  /** publishes in `waiting` that timed out since the last compaction */
  private timedOut = 0;
  /** why this link can take no more publishes, once closed */
  private gone: JobrunnerError | undefined;

  constructor(
    readonly sender: Sender,
    private readonly address: string,
    onClosed: (link: OutLink, err: JobrunnerError) => void,
    pipeline: string,
  ) {
    // sendable: credit came (a flow frame) or rhea's full buffer has room again; sender_open: attached
    sender.on('sendable', () => this.pump());
    sender.on('sender_open', () => this.pump());
    for (const o of ['accepted', 'rejected', 'released', 'modified'] as const) {
      sender.on(o, (ctx: { delivery?: RheaDelivery }) => this.outcome(ctx.delivery, o));
    }
    const closed = (ctx: { sender?: Sender }): void => {
      const err = errorFor(describeAmqpError(ctx.sender?.error), address, pipeline);
      this.fail(err, err);
      onClosed(this, err);
    };
    sender.on('sender_close', closed);
    sender.on('sender_error', closed);
  }

  isUsable(): boolean {
    return this.gone === undefined && !this.sender.is_closed();
  }

  /** resolves on the broker's outcome; waits (at most waitMs) for the link to take it first */
  publish(payload: Buffer, waitMs: number): Promise<void> {
    if (this.gone !== undefined) return Promise.reject(this.gone);
    const w: Waiting = { payload, done: deferred<void>(), timer: undefined as unknown as NodeJS.Timeout, over: false };
    w.timer = setTimeout(() => {
      w.over = true;
      w.payload = undefined;
      w.done.reject(new JobrunnerError('E_PUBLISH', `no link credit to publish to ${this.address} within ${waitMs} ms: ${this.why()}`));
      // a link that never gets credit: keep its queue to the publishes still waiting
      if (++this.timedOut > 1024 && this.timedOut * 2 > this.waiting.length - this.head) this.compact();
    }, waitMs);
    this.waiting.push(w);
    this.pump();
    return w.done.promise;
  }

  /** every waiting publish fails with `unsent` and every one in flight with `unconfirmed`; the link takes no more */
  fail(unsent: JobrunnerError, unconfirmed: JobrunnerError): void {
    this.gone ??= unsent;
    for (let i = this.head; i < this.waiting.length; i++) {
      const w = this.waiting[i] as Waiting;
      if (w.over) continue;
      w.over = true;
      clearTimeout(w.timer);
      w.done.reject(unsent);
    }
    this.waiting = [];
    this.head = 0;
    this.timedOut = 0;
    for (const d of this.inFlight.values()) d.reject(unconfirmed);
    this.inFlight.clear();
  }

  /** hands waiting publishes to rhea, in order, while the link can take them */
  private pump(): void {
    while (this.head < this.waiting.length && this.gone === undefined && this.canTake()) {
      const w = this.waiting[this.head++] as Waiting;
      if (w.over) continue;
      w.over = true;
      clearTimeout(w.timer);
      // pre-encoded (format 0): rhea sends the bytes as they are
      const delivery = this.sender.send(w.payload as Buffer, undefined, 0);
      this.handed++;
      this.inFlight.set(delivery, w.done);
    }
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
      this.timedOut = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) this.compact();
  }

  private compact(): void {
    this.waiting = this.waiting.slice(this.head).filter((w) => !w.over);
    this.head = 0;
    this.timedOut = 0;
  }

  private canTake(): boolean {
    return this.sender.is_open() && this.sender.sendable() && senderCreditLeft(this.sender, this.handed) > 0;
  }

  /** what a publish that waited out its time was waiting for */
  private why(): string {
    if (!this.sender.is_open()) return 'the broker has not attached the link';
    if (senderCreditLeft(this.sender, this.handed) <= 0) return 'the broker gives no link credit (is it blocking publishers? a resource alarm, a queue at its length limit?)';
    return `${this.inFlight.size} publishes already sent await the broker's outcome`;
  }

  private outcome(delivery: RheaDelivery | undefined, what: 'accepted' | 'rejected' | 'released' | 'modified'): void {
    if (delivery === undefined) return;
    const d = this.inFlight.get(delivery);
    if (d === undefined) return;
    this.inFlight.delete(delivery);
    if (what === 'accepted') d.resolve();
    else d.reject(new JobrunnerError('E_PUBLISH', `${this.address} answered ${what}${describeState(delivery)}`));
  }
}

/** one connection's publishing session and its links */
interface SenderState {
  live: LiveConnection;
  session: Session;
  senders: Map<string, OutLink>;
}

/** One pipeline's publishing side. */
export class Publisher {
  private tx: SenderState | undefined;

  /** `waitMs`: how long a publish waits for credit */
  constructor(
    private readonly pipeline: string,
    private readonly waitMs: () => number,
  ) {}

  /** Sends `message` to `address` and waits for the broker's disposition. */
  async send(live: LiveConnection, address: string, message: Message, jobId: string): Promise<void> {
    let payload: Buffer;
    try {
      payload = rhea.message.encode(message);
    } catch (err) {
      // a TypeError or RangeError from the encoder is the message's own content
      if (err instanceof TypeError || err instanceof RangeError) throw new JobrunnerError('E_UNPUBLISHABLE', `job ${jobId} cannot be published to ${this.pipeline}: ${errorMessage(err)}`, { cause: err });
      throw err;
    }
    await this.linkFor(live, address).publish(payload, this.waitMs());
  }

  /**
   * The connection of `generation` is gone: its session too, and no disposition, attach or credit will
   * come. rhea says so only on the connection (no link or session event), so what waits for credit on
   * its links fails here, at once: left to its timer it waited redial_timeout, and the job whose
   * follow-up it was stayed unsettled that long (shutdown waited for it).
   */
  onDisconnected(generation: number): void {
    if (this.tx?.live.generation !== generation) return;
    this.lost(this.tx);
  }

  /** the pipeline closes: what still waits fails now */
  close(): void {
    const tx = this.tx;
    this.tx = undefined;
    if (tx === undefined) return;
    const unsent = new JobrunnerError('E_PUBLISH', `pipeline ${this.pipeline} is closed`);
    const unconfirmed = new JobrunnerError('E_PUBLISH', `pipeline ${this.pipeline} is closed before the broker confirmed the publish`);
    for (const link of tx.senders.values()) link.fail(unsent, unconfirmed);
    try {
      tx.session.close();
    } catch {
      // connection gone
    }
  }

  private lost(tx: SenderState): void {
    if (this.tx === tx) this.tx = undefined;
    const unsent = new JobrunnerError('E_PUBLISH', 'the amqp1 connection was lost before the publish was sent');
    const unconfirmed = new JobrunnerError('E_PUBLISH', 'the amqp1 connection was lost before the broker confirmed the publish');
    for (const link of tx.senders.values()) link.fail(unsent, unconfirmed);
    tx.senders.clear();
  }

  private linkFor(live: LiveConnection, address: string): OutLink {
    if (this.tx !== undefined && this.tx.live !== live) this.lost(this.tx);
    if (this.tx === undefined) {
      const session = live.connection.create_session();
      session.begin();
      const state: SenderState = { live, session, senders: new Map() };
      this.tx = state;
      // RabbitMQ ends the whole session when a target does not exist (3.x on the first transfer,
      // 4.x at attach): fail what waits on it and start a new session next time
      const ended = (ctx: { session?: Session }): void => {
        if (this.tx === state) this.tx = undefined;
        const e = errorFor(describeAmqpError(ctx.session?.error), [...state.senders.keys()].join(', '), this.pipeline);
        for (const link of state.senders.values()) link.fail(e, e);
        state.senders.clear();
      };
      session.on('session_error', ended);
      session.on('session_close', ended);
    }
    const tx = this.tx;
    const existing = tx.senders.get(address);
    if (existing !== undefined && existing.isUsable()) return existing;
    const sender = tx.session.attach_sender({ target: { address }, autosettle: true });
    const link = new OutLink(
      sender,
      address,
      (l) => {
        if (tx.senders.get(address) === l) tx.senders.delete(address);
      },
      this.pipeline,
    );
    tx.senders.set(address, link);
    return link;
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
