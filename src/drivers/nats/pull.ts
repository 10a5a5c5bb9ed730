// A pull loop on a durable JetStream consumer that never holds more than `limit` unsettled messages:
// it fetches only as many as there are free slots, and settles free them. Used by the pipelines and by the
// delay mover. A fetch is never abandoned while its pull request is open: on nats-server 2.9, giving up
// the inbox of an open request (and then settling) now and then made the server forget a delivery (the
// acked message came back as a first delivery, the nak'ed one stayed away until ack_wait). So pause()
// only stops new fetches, the open one runs to its end (at most `expiresMs`), and what it still brings is
// handed on as usual (the pipeline parks it until it consumes again).

import type { Consumer, JsMsg } from '@nats-io/jetstream';
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

export class PullLoop {
  private inFlight = 0;
  private running = false;
  private paused = false;
  private done: Promise<void> | undefined;
  private wake: Deferred<void> | undefined;
  private controller: AbortController | undefined;
  private current: { stop(err?: Error): void } | undefined;

  constructor(private readonly opts: PullLoopOptions) {}

  get held(): number {
    return this.inFlight;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.controller = new AbortController();
    this.done = this.loop(this.controller.signal).catch((err: unknown) => this.opts.logger.error({ err: errorMessage(err) }, 'nats pull loop failed'));
  }

  /** no new fetches; the open one runs to its end and its messages are still handed on */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.poke();
  }

  /**
   * Stops for good: waits for the open fetch to end by itself (at most its expiry), so its pull request
   * is never left without a listener. Messages already handed out stay valid.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.paused = true;
    this.controller?.abort();
    this.poke();
    const grace = setTimeout(() => {
      // the server never closed the request (a lost connection): give it up now
      this.current?.stop();
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
      while (this.running && conn.liveConnection() === live) {
        const free = this.opts.limit - this.inFlight;
        if (free <= 0 || this.paused) {
          await this.waitWake(signal);
          continue;
        }
        try {
          const iter = await consumer.fetch({ max_messages: free, expires: this.opts.expiresMs ?? DEFAULT_EXPIRES_MS });
          this.current = iter;
          for await (const m of iter) {
            this.inFlight += 1;
            this.opts.onMessage(m, conn.currentGeneration());
          }
          failures = 0;
        } catch (err) {
          if (!this.running) return;
          failures += 1;
          this.opts.logger.debug({ err: errorMessage(err) }, 'nats fetch failed');
          await sleep(Math.min(100 * 2 ** Math.min(failures, 7), 5000), signal);
          // the consumer may be gone (deleted, a server without its state): get it again
          break;
        } finally {
          this.current = undefined;
        }
      }
    }
  }

  private waitWake(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    this.wake ??= deferred<void>();
    return this.wake.promise;
  }
}
