// OpenTelemetry tracing (SPEC §7) on @opentelemetry/sdk-node, configured by the standard OTEL_* variables
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER...).
// src/cli/serve.ts loads this file with a dynamic import only when `otel.enabled` is true, so a daemon
// with tracing off never loads the SDK. Only traces are exported: metrics are on /metrics and logs on
// stdout, so the SDK's OTLP metric and log exporters are not started.

import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  propagation,
  trace,
  type Attributes,
  type Context,
  type DiagLogger,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { PipelineConfig } from '../config/types.js';
import type { Delivery, OutgoingJob, TelemetryAttributes } from '../drivers/driver.js';
import { driverFor } from '../drivers/registry.js';
import type { Logger } from './logger.js';
import type { JobSpan, Tracing } from './tracing.js';

type SpanProcessors = NonNullable<NonNullable<ConstructorParameters<typeof NodeSDK>[0]>['spanProcessors']>;

export interface StartTracingOptions {
  logger: Logger;
  /** replaces the exporters chosen by OTEL_TRACES_EXPORTER (tests pass one that keeps the spans for them) */
  spanProcessors?: SpanProcessors;
}

/** The default service name, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one. */
export const DEFAULT_SERVICE_NAME = 'jobrunner';

/**
 * Starts the SDK (it registers the global tracer provider, context manager and propagator) and returns
 * the Tracing the daemon uses. Its shutdown() flushes the exporters and unregisters the globals.
 */
export async function startTracing(options: StartTracingOptions): Promise<Tracing> {
  const { logger } = options;
  const env = process.env;
  const namedByEnv = (env['OTEL_SERVICE_NAME'] ?? '') !== '' || /(^|,)\s*service\.name\s*=/.test(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '');
  const sdk = new NodeSDK({
    ...(namedByEnv ? {} : { serviceName: DEFAULT_SERVICE_NAME }),
    ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
    // jobrunner emits no OTel metrics or logs: do not start their (default OTLP) exporters
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  // exporter failures (collector unreachable...) go to our log instead of the console
  diag.disable();
  diag.setLogger(diagToPino(logger), { logLevel: diagLevel(env['OTEL_LOG_LEVEL']), suppressOverrideMessage: true });
  sdk.start();
  const tracing = createTracing(trace.getTracer('jobrunner'));
  logger.info(
    {
      exporter: options.spanProcessors ? 'custom' : (env['OTEL_TRACES_EXPORTER'] ?? 'otlp'),
      endpoint: env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'],
      service: namedByEnv ? (env['OTEL_SERVICE_NAME'] ?? '(OTEL_RESOURCE_ATTRIBUTES)') : DEFAULT_SERVICE_NAME,
    },
    'opentelemetry tracing on',
  );
  let stopping: Promise<void> | undefined;
  return {
    ...tracing,
    shutdown: () => {
      stopping ??= (async () => {
        try {
          await sdk.shutdown();
        } catch (err) {
          logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'opentelemetry shutdown failed: some spans may be lost');
        } finally {
          // unregister the globals so a later start (tests, a restart in-process) can register again
          trace.disable();
          context.disable();
          propagation.disable();
          diag.disable();
        }
      })();
      return stopping;
    },
  };
}

/** The message's traceparent is W3C trace context, whatever OTEL_PROPAGATORS says about HTTP. */
const w3c = new W3CTraceContextPropagator();

function extract(traceparent: string | undefined): Context {
  if (traceparent === undefined || traceparent === '') return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** the traceparent of a span, or undefined when it has no valid context (a no-op tracer, unsampled root) */
function traceparentOf(parent: Context, span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  w3c.inject(trace.setSpan(parent, span), carrier, defaultTextMapSetter);
  return carrier['traceparent'];
}

const telemetryCache = new WeakMap<PipelineConfig, TelemetryAttributes>();

/** the pipeline's messaging attributes, from its driver's descriptor (once per pipeline) */
function telemetry(p: PipelineConfig): TelemetryAttributes {
  let t = telemetryCache.get(p);
  if (t === undefined) {
    t = driverFor(p.driver).telemetry(p);
    telemetryCache.set(p, t);
  }
  return t;
}

/** messaging.system (semantic conventions): what the pipeline's broker is, as far as the config says. */
export function messagingSystem(p: PipelineConfig): string {
  return telemetry(p).system;
}

/** The Tracing of SPEC §7 over any Tracer: CONSUMER spans per job, PRODUCER spans per publish. */
export function createTracing(tracer: Tracer): Tracing {
  const traceJob = (delivery: Delivery, p: PipelineConfig): JobSpan => {
    const parent = extract(delivery.traceparent);
    const t = telemetry(p);
    const attributes: Attributes = {
      ...t.attributes,
      'messaging.system': t.system,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': delivery.queue,
      'messaging.message.id': delivery.messageId ?? delivery.id,
      'messaging.message.body.size': delivery.body.length,
      'jobrunner.pipeline': p.name,
      'jobrunner.job': delivery.job,
      'jobrunner.job_id': delivery.id,
      'jobrunner.attempt': delivery.attempt,
    };
    if (delivery.redelivered) attributes['jobrunner.redelivered'] = true;
    const span = tracer.startSpan(`${delivery.queue} process`, { kind: SpanKind.CONSUMER, attributes }, parent);
    const traceparent = traceparentOf(parent, span);
    let ended = false;
    return {
      ...(traceparent === undefined ? {} : { traceparent }),
      end(outcome: string, error?: string): void {
        if (ended) return;
        ended = true;
        span.setAttribute('jobrunner.outcome', outcome);
        if (error !== undefined) {
          span.setAttribute('error.type', outcome);
          span.setStatus({ code: SpanStatusCode.ERROR, message: error });
        }
        span.end();
      },
    };
  };

  const startProducer = (job: OutgoingJob, p: PipelineConfig): { span: Span; job: OutgoingJob } => {
    const parent = extract(job.traceparent);
    const t = telemetry(p);
    const attributes: Attributes = {
      ...t.attributes,
      'messaging.system': t.system,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'publish',
      'messaging.destination.name': t.destination,
      'messaging.message.id': job.id,
      'messaging.message.body.size': job.body.length,
      'jobrunner.pipeline': p.name,
      'jobrunner.job': job.job,
      'jobrunner.job_id': job.id,
    };
    if (job.attempt !== undefined) attributes['jobrunner.attempt'] = job.attempt;
    if (job.delayMs > 0) attributes['jobrunner.delay_ms'] = job.delayMs;
    const span = tracer.startSpan(`${p.name} publish`, { kind: SpanKind.PRODUCER, attributes }, parent);
    const traceparent = traceparentOf(parent, span);
    return { span, job: traceparent === undefined ? job : { ...job, traceparent } };
  };

  return {
    traceJob,
    producer(job: OutgoingJob, p: PipelineConfig): OutgoingJob {
      const started = startProducer(job, p);
      started.span.end();
      return started.job;
    },
    async publish(job: OutgoingJob, p: PipelineConfig, send: (job: OutgoingJob) => Promise<void>): Promise<void> {
      const { span, job: traced } = startProducer(job, p);
      try {
        await send(traced);
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        span.end();
      }
    },
    shutdown: async () => undefined,
  };
}

function diagLevel(value: string | undefined): DiagLogLevel {
  switch ((value ?? '').toUpperCase()) {
    case 'NONE':
      return DiagLogLevel.NONE;
    case 'ERROR':
      return DiagLogLevel.ERROR;
    case 'INFO':
      return DiagLogLevel.INFO;
    case 'DEBUG':
      return DiagLogLevel.DEBUG;
    case 'VERBOSE':
    case 'ALL':
      return DiagLogLevel.VERBOSE;
    default:
      return DiagLogLevel.WARN;
  }
}

function diagToPino(logger: Logger): DiagLogger {
  const log = logger.child({ component: 'opentelemetry' });
  const line = (args: unknown[]): string => args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return {
    error: (...args) => log.error(line(args)),
    warn: (...args) => log.warn(line(args)),
    info: (...args) => log.info(line(args)),
    debug: (...args) => log.debug(line(args)),
    verbose: (...args) => log.trace(line(args)),
  };
}
