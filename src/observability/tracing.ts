// OpenTelemetry tracing (SPEC §7). The interface the daemon and pipelines use; off by default, and then
// nothing here is loaded or called.

import type { PipelineConfig } from '../config/types.js';
import type { Delivery, OutgoingJob } from '../drivers/driver.js';

export interface JobSpan {
  /** the traceparent to hand the worker (the CONSUMER span's context) */
  traceparent?: string;
  end(outcome: string, error?: string): void;
}

export interface Tracing {
  /** starts the CONSUMER span of one job, parented on the message's traceparent */
  traceJob(delivery: Delivery, pipeline: PipelineConfig): JobSpan;
  /** a PRODUCER span for a publish; returns the job with its traceparent set */
  producer(job: OutgoingJob, pipeline: PipelineConfig): OutgoingJob;
  /**
   * a PRODUCER span around one publish, ended after the broker's confirm (status error when it fails);
   * `send` gets the job with its traceparent set. Optional: without it, producer() is used.
   */
  publish?(job: OutgoingJob, pipeline: PipelineConfig, send: (job: OutgoingJob) => Promise<void>): Promise<void>;
  /** flushes and shuts the SDK down */
  shutdown(): Promise<void>;
}
