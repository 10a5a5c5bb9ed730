// The pool's wait queue: jobs that found no free slot wait here in order of arrival, for at most
// allocate_timeout (then they fail E_ALLOCATE_TIMEOUT and go back to the pipeline's retry policy).
// One timer for the whole queue, set for its oldest job: FIFO, so the oldest expires first (issue 7).

import type { JobOutcome } from './types.js';
import type { PendingJob } from './worker.js';

export class WaitQueue {
  private items: (PendingJob | undefined)[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  /** allocateTimeoutMs 0: jobs wait without limit */
  constructor(private readonly allocateTimeoutMs: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(job: PendingJob): void {
    this.items.push(job);
    if (this.timer === undefined && this.allocateTimeoutMs > 0) this.timer = setTimeout(() => this.sweep(), this.allocateTimeoutMs);
  }

  /** Hands queued jobs, oldest first, to place() until it returns false (no free slot). */
  drain(place: (job: PendingJob) => boolean): void {
    while (this.head < this.items.length) {
      const job = this.items[this.head] as PendingJob;
      if (!place(job)) return;
      this.items[this.head++] = undefined;
    }
    this.reset();
  }

  /** Resolves every queued job with `outcome` and empties the queue (stop). */
  releaseAll(outcome: JobOutcome): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (let i = this.head; i < this.items.length; i++) this.items[i]?.resolve(outcome);
    this.items = [];
    this.head = 0;
  }

  private sweep(): void {
    this.timer = undefined;
    const limit = this.allocateTimeoutMs;
    const now = Date.now();
    while (this.head < this.items.length) {
      const job = this.items[this.head] as PendingJob;
      const wait = job.queuedAt + limit - now;
      if (wait > 0) {
        this.timer = setTimeout(() => this.sweep(), wait);
        return;
      }
      this.items[this.head++] = undefined;
      job.settled = true;
      job.resolve({ kind: 'failed', code: 'E_ALLOCATE_TIMEOUT', error: `no worker was free within allocate_timeout (${limit} ms)` });
    }
    this.reset();
  }

  /** the queue is empty: let go of the array (not on every drain of an already empty one: hot path) */
  private reset(): void {
    if (this.head === 0) return;
    this.items = [];
    this.head = 0;
  }
}
