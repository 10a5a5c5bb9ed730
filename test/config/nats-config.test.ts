// The nats pipeline configuration: the nats section of RoadRunner's own docs validates unchanged, its
// defaults are RoadRunner's, consumer and declare are ours, and, as in RoadRunner, a nats pipeline needs
// the global `nats` section.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigText, formatProblem } from '../../src/config/index.js';
import type { NatsPipelineOptions } from '../../src/drivers/nats/options.js';

// the nats section of RoadRunner's documentation (docs.roadrunner.dev, queues-and-jobs/nats), as published,
// plus consume_all from its older page
const RR_DOCS = `
version: "3"
rpc:
  listen: tcp://127.0.0.1:6001
server:
  command: "php php_test_files/jobs/jobs_ok.php"
  relay: "pipes"
nats:
  addr: "demo.nats.io"
jobs:
  num_pollers: 10
  pipeline_size: 100000
  pool:
    num_workers: 10
    max_jobs: 0
    allocate_timeout: 60s
    destroy_timeout: 60s
  pipelines:
    test-1:
      driver: nats
      config:
        priority: 2
        prefetch: 100
        subject: "default"
        stream: "foo"
        deliver_new: "true"
        rate_limit: 100
        delete_stream_on_stop: false
        delete_after_ack: false
        ack_wait: 30
        consume_all: true
  consume: [ "test-1" ]
`;

const optionsOf = (yaml: string): NatsPipelineOptions | undefined => checkConfigText('c.yaml', yaml, {}).config?.pipelines[0]?.options as NatsPipelineOptions | undefined;

test("RoadRunner's documented nats section validates unchanged, with RoadRunner's meanings", () => {
  const r = checkConfigText('rr.yaml', RR_DOCS, {});
  assert.deepEqual(r.problems.map(formatProblem), []);
  const p = r.config?.pipelines[0];
  assert.equal(p?.driver, 'nats');
  assert.equal(p?.requeueOnFail, false);
  assert.equal(p?.redialTimeoutMs, 60_000);
  assert.deepEqual(r.config?.connections['nats'], { urls: ['demo.nats.io'] });
  assert.deepEqual(p?.options, {
    subject: 'default',
    stream: 'foo',
    consumer: 'jobrunner-test-1',
    prefetch: 100,
    priority: 2,
    ackWaitMs: 30_000,
    deleteAfterAck: false,
    deleteStreamOnStop: false,
    deliverNew: true,
    rateLimit: 100,
    declare: true,
  });
});

test("nats defaults are RoadRunner's, but for prefetch (256, as on every AMQP driver)", () => {
  const o = optionsOf('nats: { addr: "nats://127.0.0.1:4222" }\njobs:\n  pipelines:\n    orders: { driver: nats, command: w }\n');
  assert.ok(o);
  assert.equal(o.subject, 'default');
  assert.equal(o.stream, 'default-stream');
  assert.equal(o.prefetch, 256);
  assert.equal(o.ackWaitMs, 30_000);
  assert.equal(o.consumer, 'jobrunner-orders');
  assert.equal(o.declare, true);
});

test('consumer, declare and an addr list; bad names and unknown keys are errors with the path', () => {
  const ok = checkConfigText('c.yaml', 'nats: { addr: ["nats://a:4222", "nats://b:4222"] }\njobs:\n  pipelines:\n    o: { driver: nats, command: w, config: { consumer: workers, declare: false, ack_wait: 2m } }\n', {});
  assert.deepEqual(ok.problems, []);
  const o = ok.config?.pipelines[0]?.options as NatsPipelineOptions;
  assert.equal(o.consumer, 'workers');
  assert.equal(o.declare, false);
  assert.equal(o.ackWaitMs, 120_000);
  assert.deepEqual(ok.config?.connections['nats'], { urls: ['nats://a:4222', 'nats://b:4222'] });
  const bad = checkConfigText('c.yaml', 'nats: {}\njobs:\n  pipelines:\n    o: { driver: nats, command: w, config: { stream: "a.b", subjct: x } }\n', {});
  assert.deepEqual(bad.problems.map(formatProblem), [
    'c.yaml:4:44 jobs.pipelines.o.config: stream `a.b`: a JetStream stream name may not contain `.`, `*`, `>`, whitespace or slashes',
    'c.yaml:4:61 jobs.pipelines.o.config.subjct: unknown key `subjct`; did you mean `subject`?',
  ]);
});

test('a nats pipeline needs the global nats section, as in RoadRunner', () => {
  const r = checkConfigText('c.yaml', 'jobs:\n  pipelines:\n    o: { driver: nats, command: w }\n', {});
  assert.deepEqual(r.problems.map(formatProblem), ['c.yaml:3:18 jobs.pipelines.o.driver: driver nats needs the top-level `nats` section (nats: { addr: nats://127.0.0.1:4222 })']);
});

test('nats.tls takes the tls keys of the AMQP sections: empty strings are unset, an unknown key is an error with the path', () => {
  const ok = checkConfigText('c.yaml', 'nats:\n  addr: tls://n:4222\n  tls: { root_ca: /ca.pem, cert: "", key: "", insecure_skip_verify: false, client_auth_type: no_client_cert }\njobs:\n  pipelines:\n    o: { driver: nats, command: w }\n', {});
  assert.deepEqual(ok.problems, []);
  assert.deepEqual(ok.config?.connections['nats'], { urls: ['tls://n:4222'], tls: { rootCa: '/ca.pem', insecureSkipVerify: false, clientAuthType: 'no_client_cert' } });
  const bad = checkConfigText('c.yaml', 'nats:\n  tls: { ca: /ca.pem }\njobs:\n  pipelines:\n    o: { driver: nats, command: w }\n', {});
  assert.equal(bad.problems.length, 1);
  assert.match(formatProblem(bad.problems[0]!), /nats\.tls\.ca: unknown key `ca`/);
});
