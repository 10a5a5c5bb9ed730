// The only place that sets up prom-client. One registry per daemon (tests run several daemons in one
// process), the metrics of SPEC §7 with their names and labels, plus the process defaults.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type JobOutcomeLabel = 'ack' | 'retry' | 'dead_letter' | 'requeue' | 'released';

/** Buckets for jobs from 1 ms to 10 min. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** One pipeline's per-job metrics: counts kept as plain numbers until a scrape, the histogram observed as it goes. */
export interface PipelineMetrics {
  inFlight: { inc(): void; dec(): void };
  duration: { observe(seconds: number): void };
  count(outcome: JobOutcomeLabel): void;
}

export class Metrics {
  readonly registry = new Registry();
  readonly jobsTotal = new Counter({ name: 'jobrunner_jobs_total', help: 'Jobs settled, by outcome', labelNames: ['pipeline', 'outcome'], registers: [this.registry] });
  readonly jobDuration = new Histogram({ name: 'jobrunner_job_duration_seconds', help: 'Time from delivery to the worker answer', labelNames: ['pipeline'], buckets: DURATION_BUCKETS, registers: [this.registry] });
  readonly jobsInFlight = new Gauge({ name: 'jobrunner_jobs_in_flight', help: 'Jobs delivered and not yet settled', labelNames: ['pipeline'], registers: [this.registry] });
  readonly workers = new Gauge({ name: 'jobrunner_workers', help: 'Worker processes by state', labelNames: ['pipeline', 'state'], registers: [this.registry] });
  readonly workerRestarts = new Counter({ name: 'jobrunner_worker_restarts_total', help: 'Worker processes that exited and were replaced, by reason', labelNames: ['pipeline', 'reason'], registers: [this.registry] });
  readonly brokerConnected = new Gauge({ name: 'jobrunner_broker_connected', help: '1 while the broker connection is up', labelNames: ['connection'], registers: [this.registry] });
  readonly brokerReconnects = new Counter({ name: 'jobrunner_broker_reconnects_total', help: 'Broker reconnects', labelNames: ['connection'], registers: [this.registry] });
  readonly publishedTotal = new Counter({ name: 'jobrunner_published_total', help: 'Messages published (push, follow-up, retry, dead letter), by outcome', labelNames: ['pipeline', 'outcome'], registers: [this.registry] });
  readonly queueReady = new Gauge({ name: 'jobrunner_queue_ready_messages', help: 'Messages ready in the queue, polled from the broker', labelNames: ['pipeline'], registers: [this.registry] });

  forPipeline(pipeline: string): PipelineMetrics {
    // The per-job counts are plain numbers handed to prom-client before each scrape: every labelled
    // prom-client call builds its label key again, four times a job (issue 7). The duration histogram
    // is observed as it happens (its buckets need each value).
    const counts = new Map<JobOutcomeLabel, number>();
    const pushed = new Map<JobOutcomeLabel, number>();
    let inFlight = 0;
    this.onCollect(() => {
      this.jobsInFlight.set({ pipeline }, inFlight);
      for (const [outcome, n] of counts) {
        const delta = n - (pushed.get(outcome) ?? 0);
        if (delta > 0) this.jobsTotal.inc({ pipeline, outcome }, delta);
        pushed.set(outcome, n);
      }
    });
    return {
      inFlight: {
        inc: () => void inFlight++,
        dec: () => void inFlight--,
      },
      duration: this.jobDuration.labels({ pipeline }),
      count: (outcome) => void counts.set(outcome, (counts.get(outcome) ?? 0) + 1),
    };
  }

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) collectDefaultMetrics({ register: this.registry });
  }

  private readonly collectors: Array<() => void | Promise<void>> = [];

  /** runs before every scrape: gauges that are read rather than counted (workers, queue depth) */
  onCollect(fn: () => void | Promise<void>): void {
    this.collectors.push(fn);
  }

  async text(): Promise<string> {
    await Promise.all(this.collectors.map(async (fn) => {
      try {
        await fn();
      } catch {
        // a gauge that cannot be read this time keeps its last value
      }
    }));
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
