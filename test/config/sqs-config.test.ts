// sqs pipelines in the configuration: RoadRunner's documentation samples validate unchanged, the global
// `sqs` section is optional (the AWS credential chain), RoadRunner's key aliases and spellings, and the
// exact text of the problems a user can make.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfig, checkConfigText, formatProblem } from '../../src/config/index.js';
import type { SqsPipelineOptions, SqsSettings } from '../../src/drivers/sqs/index.js';

const FIX = 'test/fixtures/configs';
const options = (yaml: string): SqsPipelineOptions => {
  const r = checkConfigText('c.yaml', yaml, {});
  assert.deepEqual(r.problems.map(formatProblem), []);
  return r.config!.pipelines[0]!.options as SqsPipelineOptions;
};
const pipeline = (config: string, head = ''): string => `${head}server: { command: "w" }\njobs:\n  pipelines:\n    p:\n      driver: sqs\n      config: ${config}\n`;

test("RoadRunner's sqs documentation sample validates unchanged, with RoadRunner's meaning", () => {
  const r = checkConfig(`${FIX}/roadrunner-sqs.rr.yaml`, {});
  assert.deepEqual(r.problems.map(formatProblem), []);
  const c = r.config!;
  const p = c.pipelines[0]!;
  assert.equal(p.driver, 'sqs');
  const o = p.options as SqsPipelineOptions;
  assert.equal(o.queue, 'default');
  assert.equal(o.prefetch, 10);
  assert.equal(o.waitTimeSeconds, 0);
  assert.equal(o.visibilityTimeoutS, 0);
  assert.equal(o.declare, true);
  assert.equal(o.messageGroupId, 'test');
  assert.deepEqual(o.attributes, { DelaySeconds: '42' });
  assert.deepEqual(o.tags, { test: 'tag' });
  // an empty endpoint is unset, as in RoadRunner's samples
  assert.deepEqual(c.connections['sqs'] as SqsSettings, { key: 'access-key', secret: 'api-secret', sessionToken: 'test', region: 'us-west-1' });
  // RoadRunner: failed jobs come back (no retain_failed_jobs)
  assert.equal(p.requeueOnFail, true);
});

test('the sqs section is optional: left out, or empty as in RoadRunner\'s IAM sample (`sqs:` with comments only)', () => {
  assert.equal(options(pipeline('{ queue: q }')).queue, 'q');
  const r = checkConfigText('c.yaml', `sqs:\n  # no parameters: the IAM role and region come from the environment\n${pipeline('{ queue: q }')}`, {});
  assert.deepEqual(r.problems.map(formatProblem), []);
});

test('defaults: long polling 20 s, prefetch 100, the pipeline name as the queue, visibility extension on', () => {
  const o = options(pipeline('{}'));
  assert.deepEqual(
    { queue: o.queue, prefetch: o.prefetch, wait: o.waitTimeSeconds, ext: o.extendVisibility, retain: o.retainFailedJobs, declare: o.declare },
    { queue: 'p', prefetch: 100, wait: 20, ext: true, retain: false, declare: true },
  );
});

test("RoadRunner's aliases: wait_time, max_messages_in_flight, declare: false, lower-case attribute names, durations", () => {
  const o = options(pipeline('{ wait_time: 5, max_messages_in_flight: 30, prefetch: 10, declare: false, visibility_timeout: 2m, error_visibility_timeout: 30s, attributes: { visibilitytimeout: 60, fifothroughputlimit: permessagegroupid, RedrivePolicy: { deadLetterTargetArn: "arn:aws:sqs:us-east-1:1:dlq", maxReceiveCount: 3 } } }'));
  assert.equal(o.waitTimeSeconds, 5);
  assert.equal(o.prefetch, 30);
  assert.equal(o.declare, false);
  assert.equal(o.visibilityTimeoutS, 120);
  assert.equal(o.errorVisibilityTimeoutS, 30);
  assert.deepEqual(o.attributes, {
    VisibilityTimeout: '60',
    FifoThroughputLimit: 'perMessageGroupId',
    RedrivePolicy: '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":3}',
  });
  assert.equal(options(pipeline('{ skip_queue_declaration: true }')).declare, false);
  assert.equal(options(pipeline('{ wait_time_seconds: 7, wait_time: 3 }')).waitTimeSeconds, 7);
});

test('retain_failed_jobs: a failed job without a retry block is given up on (kept by the queue), not requeued', () => {
  const c = checkConfigText('c.yaml', pipeline('{ retain_failed_jobs: true, error_visibility_timeout: 10 }'), {}).config!;
  assert.equal(c.pipelines[0]?.requeueOnFail, false);
});

test('problems: an unknown sqs key, an unknown section key, a FIFO attribute on a queue not named .fifo', () => {
  const lines = (yaml: string): string[] => checkConfigText('c.yaml', yaml, {}).problems.map(formatProblem);
  assert.deepEqual(lines(pipeline('{ queue: q, visibilty_timeout: 5 }')), ['c.yaml:6:27 jobs.pipelines.p.config.visibilty_timeout: unknown key `visibilty_timeout`; did you mean `visibility_timeout`?']);
  assert.deepEqual(lines(pipeline('{ queue: q }', 'sqs: { regoin: eu-west-1 }\n')), ['c.yaml:1:8 sqs.regoin: unknown key `regoin`; did you mean `region`?']);
  assert.deepEqual(lines(pipeline('{ queue: orders, attributes: { FifoQueue: "true" } }')), [
    'c.yaml:6:15 jobs.pipelines.p.config: queue "orders" has attributes.FifoQueue: true, and SQS requires a FIFO queue\'s name to end in .fifo',
  ]);
});

test('secrets of the sqs section never appear in problems', () => {
  const secret = 'Zq7-VeryDistinctiveSqsSecret-4x';
  const r = checkConfigText('c.yaml', pipeline('{ queue: q, prefetch: many }', `sqs: { key: AKIA, secret: "${secret}", session_token: "${secret}", bogus: 1 }\n`), {});
  assert.ok(r.problems.length >= 2);
  for (const line of r.problems.map(formatProblem)) assert.ok(!line.includes(secret), line);
});
