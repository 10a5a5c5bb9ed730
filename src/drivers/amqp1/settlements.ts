// amqp1 settlements: dispositions written in batches, one batch per turn of the event loop
// (setImmediate), for two reasons. rhea 3.0.5 writes the dispositions of one tick as ranges and gives a
// range the first delivery's outcome even when the next one differs (write_dispositions merges when
// first === last): an ack and a reject settled in the same tick would both go out as the ack. So
// accepted outcomes share a batch and any other outcome goes alone in a batch of its own (the two take
// turns, so a steady stream of acks cannot hold a reject back). And rhea merges only consecutive
// delivery ids: the answers of several workers come in separate I/O callbacks (worker A acks 1, 3, 5,
// worker B 2, 4, 6), so settling each at once made one disposition frame per message; gathered until
// the loop's check phase and sorted, they go out as a few ranges.
//
// Confirmed settlements (RabbitMQ 3.x): the link is rcv-settle-mode first, so a settled disposition is
// never answered, and one the broker drops is lost without a trace: a node that is shutting down takes
// dispositions for seconds after its session has lost its backing channel, then resets the connection,
// and those jobs ran again with no "result dropped" (issue 12). The 3.x plugin answers a disposition
// sent unsettled with a settled one once it has passed the ack to its channel
// (rabbit_amqp1_0_session:settle), so there each disposition goes out unsettled, and a settlement is
// done only when that answer comes; when the link or connection goes first, it fails as stale and the
// pipeline logs the result as dropped.

import type { Delivery as RheaDelivery } from 'rhea';
import type { Outcome } from './broker.js';
import { outcomeState } from './rhea-gate.js';

interface PendingSettle {
  rd: RheaDelivery;
  outcome: Outcome;
  id: string;
  done: () => void;
  fail: (err: Error) => void;
}

/** What a settlement queue needs of the receiver link it settles on. */
export interface SettlementLink {
  /** the link the deliveries came on is still the one in use, on the live connection */
  isLive(): boolean;
  /** the error for a delivery whose link is gone (E_STALE_DELIVERY) */
  staleError(id: string): Error;
  /** one delivery was settled on the wire (confirmed by the broker, with `confirm`) */
  settled(): void;
  /** a batch went out or was confirmed (or failed, `live` false): the receiver may give credit back */
  flushed(live: boolean): void;
  /** dispositions go out unsettled and a settlement is done when the broker settles it (see above) */
  readonly confirm: boolean;
}

/** One receiver link's settlements waiting for their batch. */
export class SettlementQueue {
  /** accepted settlements waiting for the next flush */
  private accepts: PendingSettle[] = [];
  /** other outcomes, each flushed alone */
  private others: PendingSettle[] = [];
  private flushScheduled = false;
  /** the last flush wrote accepted outcomes: the next one takes a waiting other outcome first */
  private lastFlushAccepted = false;
  /** with `confirm`: written, waiting for the broker's settled disposition */
  private readonly awaiting = new Map<RheaDelivery, PendingSettle>();
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly link: SettlementLink) {}

  /** the broker settled `rd` (a disposition frame): its settlement is done */
  confirmed(rd: RheaDelivery): void {
    const p = this.awaiting.get(rd);
    if (p === undefined) return;
    this.awaiting.delete(rd);
    // settled here too, so rhea forgets it (no frame: the broker settled it already)
    rd.update(true);
    this.link.settled();
    p.done();
    this.link.flushed(true);
    this.checkIdle();
  }

  /** the link or its connection is gone: what waits for the broker's answer will not get one */
  abandon(): void {
    const waiting = [...this.awaiting.values()];
    this.awaiting.clear();
    for (const p of waiting) p.fail(this.link.staleError(p.id));
    this.checkIdle();
  }

  /** resolves once nothing waits for its batch or for the broker's answer */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.accepts.length === 0 && this.others.length === 0 && this.awaiting.size === 0;
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** settles `rd` with `outcome` in the next batch; rejects with the stale error if the link is gone by then */
  queue(rd: RheaDelivery, outcome: Outcome, id: string): Promise<void> {
    return new Promise<void>((done, fail) => {
      (outcome.kind === 'accepted' ? this.accepts : this.others).push({ rd, outcome, id, done, fail });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const live = this.link.isLive();
    let batch: PendingSettle[];
    if (this.accepts.length > 0 && !(this.lastFlushAccepted && this.others.length > 0)) {
      batch = this.accepts;
      this.accepts = [];
      this.lastFlushAccepted = true;
      if (batch.length > 1) batch.sort((a, b) => a.rd.id - b.rd.id);
    } else {
      batch = this.others.splice(0, 1);
      this.lastFlushAccepted = false;
    }
    for (const p of batch) {
      if (!live) {
        p.fail(this.link.staleError(p.id));
        continue;
      }
      if (this.link.confirm) {
        p.rd.update(false, unsettledState(p.outcome));
        this.awaiting.set(p.rd, p);
        continue;
      }
      applyOutcome(p.rd, p.outcome);
      this.link.settled();
      p.done();
    }
    this.link.flushed(live);
    if (this.accepts.length > 0 || this.others.length > 0) this.schedule();
    else this.checkIdle();
  }
}

/** Writes one outcome through rhea's Delivery methods. */
function applyOutcome(rd: RheaDelivery, outcome: Outcome): void {
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
}

// the two states without fields, built once: unsettledState() runs once per settled message on 3.x
let accepted: unknown;
let released: unknown;

/** The delivery state of `outcome`, for a disposition sent unsettled. */
function unsettledState(outcome: Outcome): unknown {
  switch (outcome.kind) {
    case 'accepted':
      return (accepted ??= outcomeState('accepted'));
    case 'released':
      return (released ??= outcomeState('released'));
    case 'modified': {
      const params: Record<string, unknown> = { delivery_failed: outcome.deliveryFailed, undeliverable_here: outcome.undeliverableHere };
      if (outcome.annotations !== undefined) params['message_annotations'] = outcome.annotations;
      return outcomeState('modified', params);
    }
    case 'rejected': {
      if (outcome.condition === undefined) return outcomeState('rejected', { error: undefined });
      const error: Record<string, unknown> = { condition: outcome.condition };
      if (outcome.description !== undefined) error['description'] = outcome.description;
      if (outcome.info !== undefined) error['info'] = outcome.info;
      return outcomeState('rejected', { error });
    }
  }
}
