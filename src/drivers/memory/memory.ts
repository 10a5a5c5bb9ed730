// The in-process `memory` driver: a priority queue with delays per pipeline, for local runs, demos and
// tests. It has no broker: its queue is lost when the daemon exits (documented in docs/drivers/memory.md).
// Settlement mirrors a broker's: unsettled deliveries are bounded by prefetch, reject(true) puts the job
// back at the head of its priority, reject(false) moves it to the pipeline's dead-letter list.

import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { PipelineConfig } from '../../config/types.js';
import { MEMORY_CAPABILITIES } from './capabilities.js';
import type { MemoryPipelineOptions } from './options.js';
import type { BrokerPipeline, Capabilities, ConnectionStatus, Delivery, DriverConnection, Job, OutgoingJob } from '../driver.js';
import { JobrunnerError } from '../../shared/errors.js';
import type { Logger } from '../../observability/logger.js';

/** A FIFO with O(1) push and shift (array with a moving head, compacted when half empty). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

interface Stored {
  job: Job;
  tag: number;
}

/** Jobs by priority, highest first, FIFO within one priority. */
class PriorityQueue {
  private readonly buckets = new Map<number, Fifo<Stored>>();
  private order: number[] = [];
  size = 0;
  private bucket(priority: number): Fifo<Stored> {
    let b = this.buckets.get(priority);
    if (!b) {
      b = new Fifo<Stored>();
      this.buckets.set(priority, b);
      this.order = [...this.buckets.keys()].sort((a, b2) => b2 - a);
    }
    return b;
  }
  push(item: Stored, front = false): void {
    const b = this.bucket(item.job.priority ?? 0);
    if (front) b.unshift(item);
    else b.push(item);
    this.size++;
  }
  shift(): Stored | undefined {
    for (const p of this.order) {
      const b = this.buckets.get(p) as Fifo<Stored>;
      const item = b.shift();
      if (item) {
        this.size--;
        return item;
      }
    }
    return undefined;
  }
}

export interface DeadLetter {
  job: Job;
  reason: string;
}

export class MemoryPipeline implements BrokerPipeline {
  readonly name: string;
  readonly queue: string;
  private readonly ready = new PriorityQueue();
  private readonly unsettled = new Map<number, Stored>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private onDelivery: ((d: Delivery) => void) | undefined;
  private nextTag = 1;
  private pumping = false;
  private closed = false;
  /** messages rejected without requeue: the memory driver has no dead-letter exchange */
  readonly deadLetters: DeadLetter[] = [];

  constructor(
    private readonly config: PipelineConfig<MemoryPipelineOptions>,
    private readonly logger: Logger,
  ) {
    this.name = config.name;
    this.queue = config.name;
  }

  async declare(): Promise<void> {}

  async consume(onDelivery: (delivery: Delivery) => void): Promise<void> {
    this.onDelivery = onDelivery;
    this.pump();
  }

  async cancel(): Promise<void> {
    this.onDelivery = undefined;
  }

  async publish(out: OutgoingJob): Promise<void> {
    if (this.closed) throw new JobrunnerError('E_PUBLISH', `pipeline ${this.name} is closed`);
    const job: Job = {
      id: out.id,
      job: out.job,
      body: out.body,
      contentType: out.contentType,
      headers: out.headers,
      attempt: out.attempt ?? 1,
      redelivered: false,
      queue: this.queue,
      messageId: out.id,
      priority: out.priority ?? this.config.options.priority,
      ...(out.traceparent === undefined ? {} : { traceparent: out.traceparent }),
    };
    if (out.delayMs > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.enqueue(job);
      }, out.delayMs);
      this.timers.add(timer);
      return;
    }
    this.enqueue(job);
  }

  capabilities(): Capabilities {
    return MEMORY_CAPABILITIES;
  }

  async readyCount(): Promise<number> {
    return this.ready.size;
  }

  /** jobs waiting for their delay */
  delayedCount(): number {
    return this.timers.size;
  }

  unsettledCount(): number {
    return this.unsettled.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.onDelivery = undefined;
    for (const t of this.timers) clearTimeout(t);
    const lost = this.ready.size + this.timers.size + this.unsettled.size;
    this.timers.clear();
    if (lost > 0) this.logger.warn({ pipeline: this.name, jobs: lost }, 'memory pipeline closed with jobs still queued: the memory driver keeps nothing across restarts');
  }

  private enqueue(job: Job): void {
    this.ready.push({ job, tag: 0 });
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const prefetch = this.config.options.prefetch;
      while (this.onDelivery && this.ready.size > 0 && (prefetch <= 0 || this.unsettled.size < prefetch)) {
        const item = this.ready.shift() as Stored;
        item.tag = this.nextTag++;
        this.unsettled.set(item.tag, item);
        this.onDelivery(this.delivery(item));
      }
    } finally {
      this.pumping = false;
    }
  }

  private delivery(item: Stored): Delivery {
    const { tag } = item;
    const settle = (): Stored => {
      const stored = this.unsettled.get(tag);
      if (!stored) throw new JobrunnerError('E_STALE_DELIVERY', `delivery ${item.job.id} of pipeline ${this.name} is already settled`);
      this.unsettled.delete(tag);
      return stored;
    };
    return {
      ...item.job,
      ack: async () => {
        settle();
        this.pump();
      },
      reject: async (requeue: boolean, reason?: string) => {
        const stored = settle();
        if (requeue) {
          stored.job = { ...stored.job, redelivered: true };
          this.ready.push(stored, true);
        } else {
          this.deadLetters.push({ job: stored.job, reason: reason ?? 'rejected' });
        }
        this.pump();
      },
    };
  }
}

export class MemoryConnection extends EventEmitter implements DriverConnection {
  readonly driver = 'memory' as const;
  private readonly pipelines = new Map<string, MemoryPipeline>();
  private readonly since = Date.now();
  constructor(private readonly logger: Logger) {
    super();
  }
  async start(): Promise<void> {}
  pipeline(config: PipelineConfig): MemoryPipeline {
    if (config.driver !== 'memory') throw new JobrunnerError('E_INTERNAL', `pipeline ${config.name} is not a memory pipeline`);
    let p = this.pipelines.get(config.name);
    if (!p) {
      p = new MemoryPipeline(config as PipelineConfig<MemoryPipelineOptions>, this.logger);
      this.pipelines.set(config.name, p);
    }
    return p;
  }
  status(): ConnectionStatus {
    return { connected: true, since: this.since, reconnects: 0 };
  }
  async stop(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.close()));
  }
}

export function createMemoryConnection(options: { logger: Logger }): MemoryConnection {
  return new MemoryConnection(options.logger);
}

export function newJobId(): string {
  return randomUUID();
}
