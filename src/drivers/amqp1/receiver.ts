// The amqp1 receiving side of one pipeline: a receiver link on its own session with explicit credit
// (prefetch = unsettled deliveries + credit; credit back per settlement batch), re-attached by itself
// after a broker-side close while consuming is on. Also the passive check (an attach with no credit)
// that tells whether an address can be consumed.
//
// RabbitMQ 3.x's AMQP 1.0 plugin (rabbit_amqp1_0_outgoing_link:flow, credit API v1) turns each flow
// frame into an absolute credit for the queue: delivery-count + link-credit minus the transfers the
// session has written so far. Deliveries the queue already sent that are still on their way to the
// session (in the channel's or the session's mailbox) are not in that count, so a flow sent while
// credit is still out has the queue send them again on top: "Received transfer when credit was 0", and
// more unsettled deliveries than prefetch (23 held for prefetch 10 in a clean run). RabbitMQ 4 hands
// the receiver's delivery-count to the queue (credit API v2) and has no such race. So on RabbitMQ 3.x
// the receiver writes a link flow only when the credit it gave is used up: every delivery the queue was
// allowed has arrived, nothing is on its way, and the plugin's count is exact. The same rule stops the
// flow: no flow lowering the credit (a drain ends the plugin's session; a credit of 0 races as above):
// the credit left runs out, and what arrives meanwhile goes back at once (Amqp1Pipeline.onMessage).

import type { Message, Receiver, Delivery as RheaDelivery, Session } from 'rhea';
import type { Amqp1PipelineOptions } from './options.js';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import { RECONNECT_BACKOFF, backoffDelay } from '../../shared/backoff.js';
import { deferred, sleep } from '../../shared/deferred.js';
import { consumeAddress, type BrokerKind } from './broker.js';
import type { ConnectionHost, LiveConnection } from './live.js';
import { describeAmqpError } from './management.js';
import { adoptDeliveryCount, adoptTransferWindow, linkCredit, prepareReceiverSession, remoteAttach, wrapDeliveryCount, wrapTransferIds } from './rhea-gate.js';
import { SettlementQueue } from './settlements.js';

/** how long close() waits for settlements to go out and be confirmed */
const SETTLE_WAIT_MS = 2000;

/** One attached receiver link and what it handed out. */
export interface ReceiverState {
  live: LiveConnection;
  session: Session;
  receiver: Receiver;
  /** deliveries handed out and not settled yet */
  unsettled: number;
  open: boolean;
  /** dispositions waiting for their batch (settlements.ts) */
  settlements: SettlementQueue;
  /** RabbitMQ 3.x: credit is given only once the credit given before is used up (see the top of this file) */
  creditOnlyWhenSpent: boolean;
}

/** What the receiver needs of its pipeline. */
export interface ReceiverOwner {
  readonly name: string;
  readonly logger: Logger;
  readonly conn: ConnectionHost;
  kind(live: LiveConnection): BrokerKind;
  isConsuming(): boolean;
  isClosed(): boolean;
  /** a message arrived on `state` (already counted in state.unsettled) */
  onMessage(state: ReceiverState, kind: BrokerKind, message: Message, rd: RheaDelivery): void;
  /** before each attach on a new connection or after a lost link: declare the source again where the owner declares it */
  beforeAttach(live: LiveConnection): Promise<void>;
}

export class ReceiverLink {
  /** the link in use, if any */
  state: ReceiverState | undefined;
  private reattachTimer: NodeJS.Timeout | undefined;
  private reattachFailures = 0;
  /** why no link is attached on the live connection while consuming (the source is missing), until one is */
  failure: string | undefined;

  constructor(
    private readonly owner: ReceiverOwner,
    private readonly options: Amqp1PipelineOptions,
  ) {}

  onConnected(live: LiveConnection): void {
    this.reattachFailures = 0;
    if (this.owner.isConsuming() && !this.owner.isClosed()) this.prepareAndAttach(live);
  }

  onDisconnected(generation: number): void {
    const rx = this.state;
    if (rx !== undefined && rx.live.generation === generation) {
      this.state = undefined;
      rx.settlements.abandon();
    }
    // the connection's status says why now; the next connection attaches or says why not
    this.failure = undefined;
  }

  /** consuming (again): credit on the open link, else attach on the live connection */
  async resume(): Promise<void> {
    const rx = this.state;
    if (rx !== undefined && rx.open) {
      rx.receiver.drain = false;
      this.topUpCredit(rx);
      return;
    }
    const live = this.owner.conn.liveConnection();
    if (live !== undefined) await this.attach(live);
  }

  /**
   * Stops the flow: no credit is given any more, and the link stays so held deliveries can still be
   * settled. A drain takes back the credit left, except on RabbitMQ 3.x (see the top of this file),
   * where it runs out: at most that many deliveries arrive and go back at once.
   */
  stop(): void {
    if (this.reattachTimer !== undefined) clearTimeout(this.reattachTimer);
    this.reattachTimer = undefined;
    const rx = this.state;
    if (rx !== undefined && rx.open && !rx.creditOnlyWhenSpent) {
      try {
        rx.receiver.drain_credit();
      } catch {
        // the link is going away
      }
    }
  }

  /**
   * Ends the link's session, once the settlements given to it went out (and, on RabbitMQ 3.x, were
   * confirmed: at most SETTLE_WAIT_MS, a broker that never answers must not hold a shutdown).
   */
  async close(): Promise<void> {
    const rx = this.state;
    if (rx === undefined) return;
    const bound = new AbortController();
    await Promise.race([rx.settlements.idle(), sleep(SETTLE_WAIT_MS, bound.signal)]);
    bound.abort();
    if (this.state === rx) this.state = undefined;
    try {
      rx.session.close();
    } catch {
      // connection gone
    }
    rx.settlements.abandon();
  }

  /** the receiver a delivery came on is still the one in use, on the live connection */
  isLive(state: ReceiverState): boolean {
    return this.state === state && state.open && this.owner.conn.liveConnection() === state.live;
  }

  private attach(live: LiveConnection): Promise<void> {
    const kind = this.owner.kind(live);
    const address = consumeAddress(kind, this.options);
    const session = live.connection.create_session();
    prepareReceiverSession(session);
    session.begin();
    const receiver = session.attach_receiver({
      name: `jobrunner-${this.owner.name}-${live.generation}-${Date.now()}`,
      source: { address },
      credit_window: 0,
      autoaccept: false,
      // RabbitMQ and Service Bus settle on our disposition (rcv_settle_mode first)
      rcv_settle_mode: 0,
    });
    const state: ReceiverState = {
      live,
      session,
      receiver,
      unsettled: 0,
      open: false,
      creditOnlyWhenSpent: kind === 'rabbitmq3',
      settlements: new SettlementQueue({
        isLive: () => this.isLive(state),
        staleError: (id) => staleError(this.owner.name, id),
        settled: () => {
          state.unsettled = Math.max(0, state.unsettled - 1);
        },
        // credit back for what this batch freed, while consuming
        flushed: (live) => {
          if (live && this.owner.isConsuming()) this.topUpCredit(state, false);
        },
        // RabbitMQ 3.x drops dispositions silently when it is going down: have it confirm each one
        confirm: kind === 'rabbitmq3',
      }),
    };
    this.state = state;
    const opened = deferred<void>();
    receiver.on('receiver_open', () => {
      // a refusing broker (the queue does not exist) answers with a null source, then detaches: not open
      const remote = remoteAttach(receiver);
      if (remote !== undefined && (remote['source'] === null || remote['source'] === undefined)) return;
      this.failure = undefined;
      adoptDeliveryCount(receiver);
      adoptTransferWindow(session);
      state.open = true;
      this.reattachFailures = 0;
      this.owner.logger.info({ address, broker: kind }, `amqp1 consuming ${address}`);
      if (this.owner.isConsuming()) this.topUpCredit(state);
      opened.resolve();
    });
    const onGone = (what: string, err: unknown): void => {
      const wasOpen = state.open;
      state.open = false;
      const e = new JobrunnerError('E_BROKER_DECLARE', `amqp1 ${what} for ${address} closed: ${describeAmqpError(err)}`);
      opened.reject(e);
      if (this.state !== state) return;
      this.state = undefined;
      state.settlements.abandon();
      try {
        session.close();
      } catch {
        // gone
      }
      // a broker-side close while the connection lives on (queue deleted, session ended): re-attach
      if (wasOpen && this.owner.conn.liveConnection() === live) this.scheduleReattach(e);
    };
    receiver.on('receiver_close', (ctx) => onGone('receiver', ctx.receiver?.error));
    receiver.on('receiver_error', (ctx) => onGone('receiver', ctx.receiver?.error));
    session.on('session_close', (ctx) => onGone('session', ctx.session?.error));
    session.on('session_error', (ctx) => onGone('session', ctx.session?.error));
    // the broker's settled disposition for one sent unsettled (settlements.ts)
    receiver.on('settled', (ctx) => {
      if (ctx.delivery !== undefined) state.settlements.confirmed(ctx.delivery);
    });
    receiver.on('message', (ctx) => {
      wrapDeliveryCount(receiver);
      wrapTransferIds(session);
      if (ctx.message === undefined || ctx.delivery === undefined) return;
      state.unsettled += 1;
      this.owner.onMessage(state, kind, ctx.message, ctx.delivery);
      // RabbitMQ 3.x: the last delivery of the credit given: credit again for what was settled meanwhile
      if (state.creditOnlyWhenSpent && linkCredit(receiver) === 0 && this.owner.isConsuming()) this.topUpCredit(state, false);
    });
    return opened.promise;
  }

  private scheduleReattach(err: unknown): void {
    if (!this.owner.isConsuming() || this.owner.isClosed() || this.reattachTimer !== undefined) return;
    // while the connection lives: /health and /pipelines say consuming false, and why
    if (this.owner.conn.liveConnection() !== undefined) this.failure = errorMessage(err);
    this.reattachFailures += 1;
    const delay = backoffDelay(RECONNECT_BACKOFF, this.reattachFailures);
    // the first failure of a run at warn, the retries (with backoff, for as long as it takes) at debug
    this.owner.logger[this.reattachFailures === 1 ? 'warn' : 'debug']({ code: 'E_BROKER_CLOSED', err: errorMessage(err), retryInMs: delay }, `amqp1 receiver lost: ${errorMessage(err)}`);
    this.reattachTimer = setTimeout(() => {
      this.reattachTimer = undefined;
      const live = this.owner.conn.liveConnection();
      if (live === undefined || !this.owner.isConsuming() || this.owner.isClosed() || this.state !== undefined) return;
      this.prepareAndAttach(live);
    }, delay);
  }

  /** declares again where the owner declares (a deleted queue comes back, as amqp091 does), then attaches */
  private prepareAndAttach(live: LiveConnection): void {
    this.owner
      .beforeAttach(live)
      .then(() => {
        // stopped, attached by resume(), or the connection gone meanwhile: nothing to do
        if (!this.owner.isConsuming() || this.owner.isClosed() || this.state !== undefined || this.owner.conn.liveConnection() !== live) return;
        return this.attach(live);
      })
      .catch((err: unknown) => this.scheduleReattach(err));
  }

  /**
   * Credit back up to prefetch (unsettled + credit never exceeds it). After settlements it waits until
   * a quarter of the window is free, as rhea's own credit window does: one flow frame per many
   * settlements instead of one per tick, less work for the broker and for us. On RabbitMQ 3.x only
   * once the credit given is used up.
   */
  private topUpCredit(state: ReceiverState, eager = true): void {
    const credit = linkCredit(state.receiver);
    if (state.creditOnlyWhenSpent && credit > 0) return;
    const prefetch = this.options.prefetch;
    const want = prefetch - state.unsettled - credit;
    if (want > 0 && (eager || want >= Math.max(1, prefetch >> 2))) state.receiver.add_credit(want);
  }
}

/** E_STALE_DELIVERY for a delivery whose connection or link is gone */
export function staleError(pipeline: string, id: string): JobrunnerError {
  return new JobrunnerError('E_STALE_DELIVERY', `delivery ${id} of ${pipeline} belongs to a connection or link that is gone; the broker redelivers it`);
}

/** Resolves when `address` can be consumed (an attach with no credit is accepted); E_BROKER_DECLARE otherwise. */
export function passiveCheck(live: LiveConnection, address: string): Promise<void> {
  const session = live.connection.create_session();
  session.begin();
  const receiver = session.attach_receiver({ source: { address }, credit_window: 0, autoaccept: false });
  const d = deferred<void>();
  const timer = setTimeout(() => d.reject(new JobrunnerError('E_BROKER_DECLARE', `${address} did not attach within 10000 ms`)), 10_000);
  // a refusing broker answers the attach with a null source and detaches right after (RabbitMQ,
  // Service Bus): wait for that detach, and give an accepted attach a moment to be closed
  receiver.on('receiver_open', () => {
    const remote = remoteAttach(receiver);
    if (remote !== undefined && (remote['source'] === null || remote['source'] === undefined)) return;
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
