// A pull loop on a durable JetStream consumer that never holds more than `limit` unsettled messages.
// Fetches overlap: a new pull request is sent as soon as enough slots are free, counting what the open
// requests may still bring (`requested`), so that the next messages are on their way while the workers
// finish the last ones; messages held plus messages asked for never exceed `limit`. Slots are asked for in
// batches of at least a quarter of the limit; fewer only when nothing is asked for at all (after a short
// wait that lets settlements arriving together make one request). Used by the pipelines and by the delay
// mover. A fetch is never abandoned while its pull request is open: on nats-server 2.9, giving up the
// inbox of an open request (and then settling) now and then made the server forget a delivery (the acked
// message came back as a first delivery, the nak'ed one stayed away until ack_wait). So pause() only
// stops new fetches, the open ones run to their end (at most `expiresMs`), and what they still bring is
// handed on as usual (the pipeline parks it until it consumes again).

import type { ConsumeCallback, Consumer, ConsumerMessages, FetchOptions, JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../../observability/logger.js';
import { errorMessage } from '../../shared/errors.js';
import { deferred, sleep, type Deferred } from '../../shared/deferred.js';
import type { LiveNats, NatsLink } from './live.js';

export interface PullLoopOptions {
  conn: NatsLink;
  logger: Logger;
  /** the most unsettled messages at once */
  limit: number;
  /** the consumer on this connection (checked or declared first) */
  consumer(live: LiveNats): Promise<Consumer>;
  /** each message, with the connection generation it arrived on */
  onMessage(msg: JsMsg, generation: number): void;
  /** a fetch waits this long for messages before it is renewed, ms */
  expiresMs?: number;
  /** reports a failure to get the consumer (undefined: recovered) */
  onError?(error: string | undefined): void;
}

export const DEFAULT_EXPIRES_MS = 2000;
/** how long a lone small request waits for more free slots, ms */
const COALESCE_MS = 2;

interface OpenFetch {
  /** messages this request may still bring */
  left: number;
  stop(err?: Error): void;
}

export class PullLoop {
  private inFlight = 0;
  private running = false;
  private paused = false;
  private done: Promise<void> | undefined;
  private wake: Deferred<void> | undefined;
  private controller: AbortController | undefined;
  /** the pull requests open now */
  private readonly open = new Set<OpenFetch>();
  /** the messages the open requests may still bring */
  private requested = 0;
  private readonly batchMin: number;

  constructor(private readonly opts: PullLoopOptions) {
    this.batchMin = Math.max(1, Math.ceil(opts.limit / 4));
  }

  get held(): number {
    return this.inFlight;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.controller = new AbortController();
    this.done = this.loop(this.controller.signal).catch((err: unknown) => this.opts.logger.error({ err: errorMessage(err) }, 'nats pull loop failed'));
  }

  /** no new fetches; the open ones run to their end and their messages are still handed on */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.poke();
  }

  /**
   * Stops for good: waits for the open fetches to end by themselves (at most their expiry), so no pull
   * request is left without a listener. Messages already handed out stay valid.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.paused = true;
    this.controller?.abort();
    this.poke();
    const grace = setTimeout(() => {
      // the server never closed the request (a lost connection): give it up now
      for (const f of this.open) f.stop();
    },  (this.opts.expiresMs ?? DEFAULT_EXPIRES_MS) + 3000);
    try {
      await this.done;
    } finally {
      clearTimeout(grace);
    }
  }

  /** a message was settled: its slot is free */
  release(): void {
    if (this.inFlight > 0) this.inFlight -= 1;
    this.poke();
  }

  /** wakes the loop (a free slot, a new connection) */
  poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.resolve();
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const { conn } = this.opts;
    let failures = 0;
    while (this.running) {
      let live: LiveNats;
      if (this.paused) {
        await this.waitWake(signal);
        continue;
      }
      try {
        live = await conn.waitConnected(60_000, signal);
      } catch {
        if (!this.running || conn.isStopping()) return;
        continue;
      }
      let consumer: Consumer;
      try {
        consumer = await Promise.race([
          this.opts.consumer(live),
          live.lost.then(() => {
            throw new Error('the connection was lost');
          }),
        ]);
        this.opts.onError?.(undefined);
        failures = 0;
      } catch (err) {
        failures += 1;
        this.opts.onError?.(errorMessage(err));
        if (failures === 1) this.opts.logger.error({ err: errorMessage(err) }, 'nats consumer unavailable: retrying');
        await sleep(Math.min(500 * 2 ** Math.min(failures, 5), 15_000), signal);
        continue;
      }
      // fetch while this connection lives
      const fetching = new Set<Promise<void>>();
      let failed = false;
      while (this.running && !failed && conn.liveConnection() === live) {
        const free = this.opts.limit - this.inFlight - this.requested;
        if (free <= 0 || this.paused) {
          await this.waitWake(signal);
          continue;
        }
        if (free < this.batchMin) {
          // a small request only when nothing is asked for, and after a moment for more free slots
          if (this.requested > 0) {
            await this.waitWake(signal);
            continue;
          }
          await this.waitWake(signal, COALESCE_MS);
          if (!this.running || this.paused || conn.liveConnection() !== live) continue;
        }
        const batch = this.opts.limit - this.inFlight - this.requested;
        if (batch <= 0) continue;
        const f: OpenFetch = { left: batch, stop: () => undefined };
        this.open.add(f);
        this.requested += batch;
        try {
          // the callback form: each message handed on as it is parsed, not through an async iterator (a
          // promise and a microtask per message); the fetch ends as the iterator would, at its closed().
          // The client's types offer `callback` on consume() only; fetch() is the same class underneath
          // (PullConsumerMessagesImpl in @nats-io/jetstream 3.3), and the conformance suite runs on it
          const opts: FetchOptions & ConsumeCallback = { max_messages: batch, expires: this.opts.expiresMs ?? DEFAULT_EXPIRES_MS, callback: (m) => this.take(m, f) };
          const iter = await consumer.fetch(opts);
          f.stop = (err) => iter.stop(err);
          const run = this.drainFetch(iter, f).then(
            () => {
              failures = 0;
            },
            (err: unknown) => {
              if (!this.running) return;
              failures += 1;
              failed = true;
              this.opts.logger.debug({ err: errorMessage(err) }, 'nats fetch failed');
            },
          );
          fetching.add(run);
          void run.finally(() => {
            fetching.delete(run);
            this.poke();
          });
        } catch (err) {
          this.endFetch(f);
          if (!this.running) break;
          failures += 1;
          failed = true;
          this.opts.logger.debug({ err: errorMessage(err) }, 'nats fetch failed');
        }
      }
      // the open requests run to their end (see the top of this file) before anything is asked again
      await Promise.all(fetching);
      if (failed && this.running) {
        await sleep(Math.min(100 * 2 ** Math.min(failures, 7), 5000), signal);
        // the consumer may be gone (deleted, a server without its state): get it again
      }
    }
  }

  private take(m: JsMsg, f: OpenFetch): void {
    if (f.left > 0) {
      f.left -= 1;
      this.requested -= 1;
    }
    this.inFlight += 1;
    this.opts.onMessage(m, this.opts.conn.currentGeneration());
  }

  /** until the fetch ends (all it asked for came, it expired, or it was stopped); throws its error */
  private async drainFetch(iter: ConsumerMessages, f: OpenFetch): Promise<void> {
    try {
      const err = await iter.closed();
      if (err) throw err;
    } finally {
      this.endFetch(f);
    }
  }

  private endFetch(f: OpenFetch): void {
    if (!this.open.delete(f)) return;
    this.requested -= f.left;
    f.left = 0;
    this.poke();
  }

  /** until poke() (a free slot, a fetch ended, a new connection), the signal, or `ms` */
  private waitWake(signal: AbortSignal, ms?: number): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    this.wake ??= deferred<void>();
    if (ms === undefined) return this.wake.promise;
    const w = this.wake;
    const timer = setTimeout(() => {
      if (this.wake === w) this.wake = undefined;
      w.resolve();
    }, ms);
    return w.promise.finally(() => clearTimeout(timer));
  }
}
