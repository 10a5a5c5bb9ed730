// Settlement: turns a worker's outcome into broker operations, choosing by the broker's capabilities,
// never its name. A retry after a delay uses the broker's own retry-after where it has one
// (Delivery.retryLater); otherwise retries and dead letters to a pipeline are published and confirmed
// before the original is acked; a publish that fails leaves the original unacked (released back to the
// broker), so no path loses a message.

import type { PipelineConfig } from '../config/types.js';
import type { BrokerPipeline, Delivery, OutgoingJob } from '../drivers/driver.js';
import type { JobOutcome } from '../pool/types.js';
import type { Logger } from '../observability/logger.js';
import type { JobOutcomeLabel, PipelineMetrics } from '../observability/metrics.js';
import { backoffDelay } from '../shared/backoff.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import { againJob, deadLetterJob } from './outgoing.js';

/** Publishes a job to a pipeline by name (follow-ups, dead letters): the daemon routes it. */
export type PublishTo = (pipeline: string, job: OutgoingJob) => Promise<void>;

export interface SettleContext {
  config: PipelineConfig;
  broker: BrokerPipeline;
  publishTo: PublishTo;
  logger: Logger;
  metrics: PipelineMetrics;
}

/** Applies an outcome; never rejects (failures are logged, and the broker redelivers what is unsettled). */
export function settle(ctx: SettleContext, d: Delivery, outcome: JobOutcome, publishes: Promise<void>[]): Promise<void> {
  // the common case in a function of its own: an async function's suspended state is as large as all
  // its locals, and this one runs once per job (issue 7)
  return outcome.kind === 'ack' && publishes.length === 0 ? ackOnly(ctx, d) : settleAny(ctx, d, outcome, publishes);
}

async function ackOnly(ctx: SettleContext, d: Delivery): Promise<void> {
  try {
    await d.ack();
    acked(ctx, d);
  } catch (err) {
    dropped(ctx, d, err);
  }
}

function acked(ctx: SettleContext, d: Delivery): void {
  count(ctx, 'ack');
  // the fields object only when it is logged: this runs once per job (issue 7)
  if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ pipeline: ctx.config.name, job_id: d.id, job: d.job, attempt: d.attempt }, 'job done');
}

function dropped(ctx: SettleContext, d: Delivery, err: unknown): void {
  // E_STALE_DELIVERY after a reconnect, or a channel that closed: the broker still holds the message
  ctx.logger.warn({ pipeline: ctx.config.name, job_id: d.id, err: errorMessage(err) }, 'result dropped: the message stays with the broker, which redelivers it');
}

async function settleAny(ctx: SettleContext, d: Delivery, outcome: JobOutcome, publishes: Promise<void>[]): Promise<void> {
  try {
    switch (outcome.kind) {
      case 'ack': {
        if (publishes.length > 0) {
          const results = await Promise.allSettled(publishes);
          const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed) {
            if (gone(ctx, d)) return;
            await fail(ctx, d, `follow-up publish failed: ${errorMessage(failed.reason)}`);
            return;
          }
        }
        await d.ack();
        acked(ctx, d);
        return;
      }
      case 'released':
        await d.reject(true, 'released');
        count(ctx, 'released');
        return;
      case 'nack':
        await Promise.allSettled(publishes);
        if (outcome.requeue === false) {
          await deadLetter(ctx, d, outcome.error);
        } else if (outcome.requeue === true) {
          await requeue(ctx, d, outcome.error, outcome.delayMs ?? 0, outcome.headers);
        } else {
          await fail(ctx, d, outcome.error, outcome.headers);
        }
        return;
      case 'failed':
        await Promise.allSettled(publishes);
        if (outcome.code === 'E_ALLOCATE_TIMEOUT') {
          // no worker was free (crash loop, all busy): not the job's fault, so no attempt is spent;
          // back to the broker, which hands it out again (after allocate_timeout, never a hot loop)
          ctx.logger.warn({ pipeline: ctx.config.name, job_id: d.id, code: outcome.code, reason: outcome.error }, 'no worker free in time: returning the job to the broker');
          await d.reject(true, outcome.error);
          count(ctx, 'released');
          return;
        }
        await fail(ctx, d, `${outcome.code}: ${outcome.error}`);
        return;
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    dropped(ctx, d, err);
  }
}

/**
 * The delivery's connection is gone: the broker already hands the message out again, so publishing a
 * retry or dead-letter copy now would make a second one (found by the connection-cut fault test).
 */
function gone(ctx: SettleContext, d: Delivery): boolean {
  if (d.live === undefined || d.live()) return false;
  ctx.logger.warn({ pipeline: ctx.config.name, job_id: d.id }, 'result dropped: the connection it came on is gone, the broker redelivers the message');
  return true;
}

function count(ctx: SettleContext, outcome: JobOutcomeLabel): void {
  ctx.metrics.count(outcome);
}

/** A failed job: the retry policy, or without one RoadRunner's requeue_on_fail. */
async function fail(ctx: SettleContext, d: Delivery, reason: string, headers?: Record<string, string[]>): Promise<void> {
  const { config } = ctx;
  ctx.logger.warn({ pipeline: config.name, job_id: d.id, job: d.job, attempt: d.attempt, reason }, 'job failed');
  const retry = config.retry;
  if (retry) {
    if (d.attempt >= retry.maxAttempts) {
      await deadLetter(ctx, d, `${reason} (after ${d.attempt} attempts)`);
      return;
    }
    const delayMs = backoffDelay(retry.backoff, d.attempt);
    await republish(ctx, d, 'retry', delayMs, headers);
    return;
  }
  if (config.requeueOnFail) {
    await d.reject(true, reason);
    count(ctx, 'requeue');
    return;
  }
  await deadLetter(ctx, d, reason);
}

/** nack with requeue: true — again after delay, with headers merged; bounded by max_attempts when set. */
async function requeue(ctx: SettleContext, d: Delivery, reason: string, delayMs: number, headers?: Record<string, string[]>): Promise<void> {
  ctx.logger.warn({ pipeline: ctx.config.name, job_id: d.id, job: d.job, attempt: d.attempt, reason }, 'job failed: the worker asked for a requeue');
  const retry = ctx.config.retry;
  if (retry && d.attempt >= retry.maxAttempts) {
    await deadLetter(ctx, d, `${reason} (requeued, after ${d.attempt} attempts)`);
    return;
  }
  await republish(ctx, d, 'requeue', delayMs, headers);
}

/**
 * The job again, as the next attempt: by the broker's own retry-after where it can take this delay (and
 * these headers), else published again (confirmed), then the original acked; a failed publish releases
 * the original.
 */
async function republish(ctx: SettleContext, d: Delivery, outcome: 'retry' | 'requeue', delayMs: number, headers?: Record<string, string[]>): Promise<void> {
  const name = ctx.config.name;
  if (gone(ctx, d)) return;
  const native = d.retryLater === undefined ? false : ctx.broker.capabilities().retryLater;
  if (native !== false && d.retryLater !== undefined && delayMs <= native.maxDelayMs && (native.headers || headers === undefined || Object.keys(headers).length === 0)) {
    await d.retryLater(delayMs, native.headers ? headers : undefined);
    count(ctx, outcome);
    ctx.logger.info({ pipeline: name, job_id: d.id, attempt: d.attempt + 1, delay_ms: delayMs }, outcome === 'retry' ? 'job scheduled for retry' : 'job requeued');
    return;
  }
  try {
    // through publishTo: counted in published_total and traced (a PRODUCER span) like every publish
    await ctx.publishTo(name, againJob(d, name, { delayMs, attempt: d.attempt + 1, headers }));
  } catch (err) {
    if (unpublishable(err)) {
      // the copy fails for its own content: returning it to the broker could only loop
      await deadLetter(ctx, d, `${errorMessage(err)} (the ${outcome} copy)`);
      return;
    }
    ctx.logger.warn({ pipeline: name, job_id: d.id, err: errorMessage(err) }, `${outcome} publish failed: returning the job to the broker`);
    await d.reject(true, 'retry publish failed');
    count(ctx, 'requeue');
    return;
  }
  await d.ack();
  count(ctx, outcome);
  ctx.logger.info({ pipeline: name, job_id: d.id, attempt: d.attempt + 1, delay_ms: delayMs }, outcome === 'retry' ? 'job scheduled for retry' : 'job requeued');
}

/** To dead_letter.pipeline (confirmed, then ack) or the broker's own dead-lettering. */
async function deadLetter(ctx: SettleContext, d: Delivery, reason: string): Promise<void> {
  const { config } = ctx;
  const target = config.deadLetter?.pipeline;
  if (target) {
    if (gone(ctx, d)) return;
    try {
      // publishTo counts it in published_total
      await ctx.publishTo(target, deadLetterJob(d, config.name, target, reason));
    } catch (err) {
      if (unpublishable(err)) {
        await deadLetterBare(ctx, d, target, `${reason}; ${errorMessage(err)}`);
        return;
      }
      ctx.logger.warn({ pipeline: config.name, job_id: d.id, err: errorMessage(err) }, `dead-letter publish to ${target} failed: returning the job to the broker`);
      await d.reject(true, 'dead-letter publish failed');
      count(ctx, 'requeue');
      return;
    }
    await d.ack();
  } else {
    await d.reject(false, reason);
  }
  count(ctx, 'dead_letter');
  ctx.logger.warn(
    { pipeline: config.name, job_id: d.id, job: d.job, attempt: d.attempt, reason, to: target ?? 'broker' },
    // the broker's own dead-lettering is only as good as the queue's settings: say what really happens
    target ? `job dead-lettered to ${target}` : "job rejected: dead-lettered by the queue's DLX if it has one, otherwise dropped by the broker",
  );
}

function unpublishable(err: unknown): boolean {
  return err instanceof JobrunnerError && err.code === 'E_UNPUBLISHABLE';
}

/**
 * The dead-letter copy failed for its own content: a copy without the job's headers, else the broker's
 * own dead-lettering (basic.nack requeue=false / rejected) with the reason. Never back to the queue.
 */
async function deadLetterBare(ctx: SettleContext, d: Delivery, target: string, reason: string): Promise<void> {
  const { config } = ctx;
  let to = target;
  try {
    const bare = deadLetterJob(d, config.name, target, reason);
    bare.headers = {};
    delete bare.traceparent;
    bare.extra = { ...bare.extra, 'x-jobrunner-normalised': 'every header dropped: the copy could not be published with them' };
    await ctx.publishTo(target, bare);
    await d.ack();
  } catch (err) {
    if (!unpublishable(err)) {
      ctx.logger.warn({ pipeline: config.name, job_id: d.id, err: errorMessage(err) }, `dead-letter publish to ${target} failed: returning the job to the broker`);
      await d.reject(true, 'dead-letter publish failed');
      count(ctx, 'requeue');
      return;
    }
    to = 'broker';
    await d.reject(false, reason);
  }
  count(ctx, 'dead_letter');
  ctx.logger.warn({ pipeline: config.name, job_id: d.id, job: d.job, attempt: d.attempt, reason, to, code: 'E_UNPUBLISHABLE' }, 'job dead-lettered: its copy could not be published as it was');
}
