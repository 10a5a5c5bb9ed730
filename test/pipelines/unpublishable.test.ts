// Hardening case 2, second line of defence: a retry or dead-letter copy that fails for its own content
// (E_UNPUBLISHABLE) is never returned to the queue (that loops): the job is dead-lettered, by a copy without
// its headers, else by the broker's own means; a broker failure (E_PUBLISH) still returns it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PipelineConfig, RetryConfig } from '../../src/config/types.js';
import type { BrokerPipeline, Capabilities, Delivery, Headers, OutgoingJob } from '../../src/drivers/driver.js';
import { Metrics } from '../../src/observability/metrics.js';
import { settle, type SettleContext } from '../../src/pipelines/settle.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { RETRY, broker, delivery, pipelineConfig, silent } from '../helpers/fake-settle.js';

type Publish = (name: string, job: OutgoingJob) => Promise<void>;

function ctx(config: PipelineConfig, publishTo: Publish): SettleContext {
  return { config, broker: broker({}), publishTo, logger: silent, metrics: new Metrics({ defaults: false }).forPipeline('p') };
}

const unpublishable = (): never => {
  throw new JobrunnerError('E_UNPUBLISHABLE', 'job j1 cannot be published: RangeError: too big');
};

function withHeaders(calls: string[]): Delivery {
  return { ...delivery(calls, false), headers: { big: ['x'] } };
}

test('case 2: a retry copy that fails for its content is dead-lettered; the dead-letter copy without headers goes through', async () => {
  const calls: string[] = [];
  const published: string[] = [];
  const publishTo: Publish = async (name, job) => {
    if (Object.keys(job.headers).length > 0) unpublishable();
    published.push(`${name} ${String(job.extra?.['x-jobrunner-normalised'] ?? '')}`);
  };
  await settle(ctx(pipelineConfig({ retry: RETRY, deadLetter: { pipeline: 'dead' } }), publishTo), withHeaders(calls), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['ack']);
  assert.equal(published.length, 1);
  assert.match(published[0]!, /^dead every header dropped/);
});

test('case 2: when no copy can be published for its content, the broker dead-letters it (reject without requeue), never requeue', async () => {
  const calls: string[] = [];
  await settle(ctx(pipelineConfig({ retry: RETRY, deadLetter: { pipeline: 'dead' } }), async () => unpublishable()), withHeaders(calls), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['reject(false)']);
  const calls2: string[] = [];
  await settle(ctx(pipelineConfig({ retry: RETRY }), async () => unpublishable()), withHeaders(calls2), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls2, ['reject(false)'], 'without dead_letter.pipeline: the broker\'s own dead-lettering');
});

test('a copy that fails because of the broker (E_PUBLISH) still goes back to the queue', async () => {
  const calls: string[] = [];
  const brokerDown: Publish = async () => {
    throw new JobrunnerError('E_PUBLISH', 'the broker did not confirm');
  };
  await settle(ctx(pipelineConfig({ retry: RETRY }), brokerDown), withHeaders(calls), { kind: 'nack', error: 'boom' }, []);
  assert.deepEqual(calls, ['reject(true)']);
});
