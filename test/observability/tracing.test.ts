// Tracing (SPEC §7) with an in-memory span exporter: a CONSUMER span per job parented on the message's
// traceparent, the worker gets the consumer span's context in `trace.traceparent`, follow-ups and retries
// carry it on through PRODUCER spans, failures end with status error; with tracing off the worker gets the
// message's own traceparent untouched.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/observability/otel.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { BrokerPipeline } from '../../src/drivers/driver.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import { FAST_RETRY, config, http, memoryPipeline, runDaemon, waitFor } from './support.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const CALLER = `00-${TRACE_ID}-${CALLER_SPAN}-01`;

const tp = (s: ReadableSpan): string => `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`;

/** the memory broker of a pipeline, to publish a message exactly as a foreign producer would */
function broker(daemon: Daemon, name: string): BrokerPipeline {
  const p = (daemon as unknown as { pipelines: Map<string, { broker: BrokerPipeline }> }).pipelines.get(name);
  assert.ok(p, `pipeline ${name}`);
  return p.broker;
}

async function traced(): Promise<{ exporter: InMemorySpanExporter; tracing: Awaited<ReturnType<typeof startTracing>> }> {
  const exporter = new InMemorySpanExporter();
  const tracing = await startTracing({ logger: silentLogger(), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, tracing };
}

test('a message with a traceparent: CONSUMER span parented on it, the worker continues the consumer span', async () => {
  const { exporter, tracing } = await traced();
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'orders' }, out)]), { tracing });
  try {
    await broker(run.daemon, 'orders').publish({ id: 'job-1', job: 'Ship', pipeline: 'orders', body: Buffer.from('{}'), contentType: 'application/json', headers: {}, delayMs: 0, traceparent: CALLER });
    const span = await waitFor('the consumer span', () => exporter.getFinishedSpans().find((s) => s.name === 'orders process'));
    assert.equal(span.kind, SpanKind.CONSUMER);
    assert.equal(span.spanContext().traceId, TRACE_ID);
    assert.equal(span.parentSpanContext?.spanId, CALLER_SPAN);
    assert.equal(span.parentSpanContext?.isRemote, true);
    assert.deepEqual(
      { ...span.attributes },
      {
        'messaging.system': 'memory',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': 'orders',
        'messaging.message.id': 'job-1',
        'messaging.message.body.size': 2,
        'jobrunner.pipeline': 'orders',
        'jobrunner.job': 'Ship',
        'jobrunner.job_id': 'job-1',
        'jobrunner.attempt': 1,
        'jobrunner.outcome': 'ack',
      },
    );
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    const got = await waitFor('the worker got the job', () => run.received().find((r) => r.id === 'job-1'));
    assert.equal(got.traceparent, tp(span));
    assert.notEqual(got.traceparent, CALLER);
  } finally {
    await run.stop();
  }
  // stop() shut the SDK down: a second start in this process works
});

test('push with a traceparent header, a follow-up and a retry: one trace, every hop parented on the one before', async () => {
  const { exporter, tracing } = await traced();
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'orders', retry: FAST_RETRY }, out), memoryPipeline({ name: 'audit' }, out)]), { tracing });
  try {
    const pushed = await http('POST', `${run.url}/pipelines/orders/jobs`, { job: 'Ship', payload: { do: 'follow', to: 'audit' } }, { traceparent: CALLER });
    assert.equal(pushed.status, 202);
    const spans = await waitFor('four spans', () => {
      const s = exporter.getFinishedSpans();
      return s.some((x) => x.name === 'audit process') ? s : undefined;
    });
    const one = (name: string): ReadableSpan => {
      const found = spans.filter((s) => s.name === name);
      assert.equal(found.length, 1, `one span ${name}: ${spans.map((s) => s.name).join(', ')}`);
      return found[0] as ReadableSpan;
    };
    const push = one('orders publish');
    const consume = one('orders process');
    const follow = one('audit publish');
    const audit = one('audit process');
    assert.equal(push.kind, SpanKind.PRODUCER);
    assert.equal(follow.kind, SpanKind.PRODUCER);
    assert.equal(push.attributes['messaging.operation.type'], 'send');
    assert.equal(push.attributes['messaging.message.id'], pushed.body.id);
    for (const s of spans) assert.equal(s.spanContext().traceId, TRACE_ID, s.name);
    assert.equal(push.parentSpanContext?.spanId, CALLER_SPAN);
    assert.equal(consume.parentSpanContext?.spanId, push.spanContext().spanId);
    assert.equal(follow.parentSpanContext?.spanId, consume.spanContext().spanId);
    assert.equal(audit.parentSpanContext?.spanId, follow.spanContext().spanId);
    const received = run.received();
    assert.equal(received.find((r) => r.pipeline === 'orders')?.traceparent, tp(consume));
    assert.equal(received.find((r) => r.pipeline === 'audit')?.traceparent, tp(audit));

    // a failing job: error status, and its retry is a PRODUCER span under the failed attempt
    exporter.reset();
    const failed = await http('POST', `${run.url}/pipelines/orders/jobs`, { job: 'Ship', id: 'fails', payload: { do: 'fail' } });
    assert.equal(failed.status, 202);
    const tries = await waitFor('two attempts', () => {
      const s = exporter.getFinishedSpans().filter((x) => x.name === 'orders process');
      return s.length === 2 ? s : undefined;
    });
    const [first, second] = tries.sort((a, b) => Number(a.attributes['jobrunner.attempt']) - Number(b.attributes['jobrunner.attempt'])) as [ReadableSpan, ReadableSpan];
    assert.equal(first.attributes['jobrunner.attempt'], 1);
    assert.equal(second.attributes['jobrunner.attempt'], 2);
    for (const s of [first, second]) {
      assert.equal(s.status.code, SpanStatusCode.ERROR);
      assert.equal(s.status.message, 'failed by fixture');
      assert.equal(s.attributes['jobrunner.outcome'], 'nack');
    }
    const retry = exporter.getFinishedSpans().find((s) => s.name === 'orders publish' && s.attributes['jobrunner.attempt'] === 2);
    assert.ok(retry, 'a PRODUCER span for the retry');
    assert.equal(retry.parentSpanContext?.spanId, first.spanContext().spanId);
    assert.equal(second.parentSpanContext?.spanId, retry.spanContext().spanId);
    assert.equal(second.spanContext().traceId, first.spanContext().traceId);
  } finally {
    await run.stop();
  }
});

test('tracing off: the worker gets the message traceparent as it came, and follow-ups carry it', async () => {
  const run = await runDaemon((out) => config([memoryPipeline({ name: 'orders' }, out), memoryPipeline({ name: 'audit' }, out)]));
  try {
    await broker(run.daemon, 'orders').publish({ id: 'job-2', job: 'Ship', pipeline: 'orders', body: Buffer.from('{"do":"follow","to":"audit"}'), contentType: 'application/json', headers: {}, delayMs: 0, traceparent: CALLER });
    const got = await waitFor('both jobs', () => {
      const r = run.received();
      return r.length === 2 ? r : undefined;
    });
    assert.deepEqual(
      got.map((r) => [r.pipeline, r.traceparent]),
      [
        ['orders', CALLER],
        ['audit', CALLER],
      ],
    );
  } finally {
    await run.stop();
  }
});
