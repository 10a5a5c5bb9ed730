// RoadRunner's own files validate unchanged, with RoadRunner's meaning, and what jobrunner does nothing
// with is a warning. The files here are written for this project in the shapes RoadRunner's amqp driver
// tests and the amqp1 driver's documentation use (the same sections and keys, not copies).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigText, formatProblem, withHttpAddress } from '../../src/config/index.js';

const HEAD = [
  "version: '3'",
  'rpc:',
  '  listen: tcp://127.0.0.1:6001',
  'server:',
  '  command: "php php_test_files/jobs/jobs_ok.php"',
  '  relay: "pipes"',
  '  relay_timeout: "20s"',
  'logs:',
  '  level: debug',
  '  encoding: console',
  '  mode: development',
];
const AMQP = ['amqp:', '  addr: amqp://guest:guest@127.0.0.1:5672/'];
const JOBS = ['jobs:', '  num_pollers: 10', '  pipeline_size: 100000', '  timeout: 10', '  pool:', '    num_workers: 10', '    max_jobs: 0', '    allocate_timeout: 60s', '    destroy_timeout: 1s'];

function check(lines: string[]): { problems: string[]; warnings: string[]; config: ReturnType<typeof checkConfigText>['config'] } {
  const r = checkConfigText('.rr.yaml', `${lines.join('\n')}\n`, {});
  return { problems: r.problems.map(formatProblem), warnings: r.warnings.map(formatProblem), config: r.config };
}

test('a jobs section with no pipelines (RoadRunner declares them over RPC): valid, one warning', () => {
  const r = check([...HEAD, ...AMQP, ...JOBS]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, ['.rr.yaml:14:1 jobs: no pipeline is defined (RoadRunner declares them over RPC, which jobrunner does not serve): nothing will be consumed']);
  assert.equal(r.config?.pipelines.length, 0);
});

const FLAT = [
  '  pipelines:',
  '    test-1:',
  '      driver: amqp',
  '      config:',
  '        prefetch: 100',
  '        queue: test-1-queue',
  '        priority: 1',
  '        pipeline_size: 100',
  '        exchange: default',
  '        exchange_type: direct',
  '        routing_key: test-1',
  '        exclusive: false',
  '        multiple_ack: false',
  '        requeue_on_fail: false',
  '        delete_queue_on_stop: true',
  '  consume: [ "test-1" ]',
];

test("RoadRunner's metrics section is accepted and named once as not used", () => {
  const r = check([...HEAD, ...AMQP, 'metrics:', '  address: 127.0.0.1:2112', ...JOBS, ...FLAT]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, ['.rr.yaml:14:1 metrics: RoadRunner\'s `metrics` section is not used by jobrunner']);
  assert.equal(r.config?.pipelines[0]?.driver, 'amqp091');
});

test('amqp pipelines without the global amqp section use RoadRunner\'s default address, with a warning', () => {
  const r = check([...HEAD, ...JOBS, ...FLAT]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, ['.rr.yaml:23:15 jobs.pipelines.test-1.driver: no top-level `amqp` section: connecting to RoadRunner\'s default, amqp://127.0.0.1:5672/']);
  assert.deepEqual((r.config?.connections['amqp'] as { urls: string[] } | undefined)?.urls, ['amqp://guest:guest@127.0.0.1:5672/']);
  const p = r.config?.pipelines[0];
  assert.equal(p?.driver, 'amqp091');
  assert.equal(p?.options.prefetch, 100);
  assert.equal((p?.options as { multipleAck?: boolean } | undefined)?.multipleAck, false);
});

test('the nested (version 2) form with headers, TLS and redial validates without a warning', () => {
  const r = check([
    ...HEAD,
    'amqp:',
    '  addr: amqps://guest:guest@127.0.0.1:5671/',
    '  tls:',
    '    key: ""',
    '    cert: ""',
    '    root_ca: ""',
    '    client_auth_type: no_client_certs',
    ...JOBS,
    '  pipelines:',
    '    test-1:',
    '      driver: amqp',
    '      config:',
    '        version: 2',
    '        prefetch: 100',
    '        priority: 1',
    '        pipeline_size: 100',
    '        redial_timeout: 20',
    '        exchange: { name: test-1, type: headers, durable: true, auto_delete: false, declare: true }',
    '        queue:',
    '          name: test-1-queue',
    '          routing_key: test-1',
    '          durable: true',
    '          exclusive: false',
    '          headers: { x-queue-type: quorum }',
    '          delete_on_stop: true',
    '  consume: [ "test-1" ]',
  ]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, []);
});

test("the amqp1 driver's documented keys validate in an amqp1 pipeline (exchange_type and exclusive informational)", () => {
  const r = check([
    "version: '3'",
    'server: { command: "php worker.php" }',
    'amqp1:',
    '  addr: amqp://guest:guest@127.0.0.1:5672',
    '  container_id: rr-jobs',
    'jobs:',
    '  consume: [orders]',
    '  pipelines:',
    '    orders:',
    '      driver: amqp1',
    '      config:',
    '        queue: orders',
    '        exchange: amq.topic',
    '        exchange_type: topic',
    '        routing_key: orders.created',
    '        prefetch: 10',
    '        priority: 5',
    '        durable: true',
    '        exclusive: false',
  ]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, []);
});

test("an http section in RoadRunner's HTTP-plugin shape is not the control API: not used, the control API stays on loopback", () => {
  const r = check([...HEAD, ...AMQP, 'http:', '  address: 0.0.0.0:8080', '  middleware: [gzip]', '  pool:', '    num_workers: 4', ...JOBS, ...FLAT]);
  assert.deepEqual(r.problems, []);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /^\.rr\.yaml:14:1 http: this is RoadRunner's HTTP server \(it has `middleware`, `pool`\), which jobrunner does not run: section not used; the control API stays on 127\.0\.0\.1:2114/);
  assert.equal(r.config?.http.address, '127.0.0.1:2114');
});

test('a control address other hosts can reach needs a token or the explicit opt-in', () => {
  const base = [...HEAD, ...AMQP, ...JOBS, ...FLAT];
  const open = check([...base, 'http:', '  address: 0.0.0.0:2114']);
  assert.deepEqual(open.problems, [
    '.rr.yaml:40:12 http.address: 0.0.0.0:2114 is reachable from other hosts and no http.token is set: anyone who reaches it could pause, resume or push. Set http.token, bind 127.0.0.1, or set http.allow_unauthenticated: true to allow it',
  ]);
  assert.deepEqual(check([...base, 'http:', '  address: 0.0.0.0:2114', '  token: s3cret']).problems, []);
  assert.deepEqual(check([...base, 'http:', '  address: 0.0.0.0:2114', '  allow_unauthenticated: true']).problems, []);
  assert.deepEqual(check([...base, 'http:', '  address: "[::1]:2114"']).problems, []);
  assert.deepEqual(check([...base, 'http:', '  address: localhost:2114']).problems, []);
  // --http-address is held to the same rule
  const config = check(base).config!;
  assert.equal(withHttpAddress(config, '127.0.0.1:0').http.address, '127.0.0.1:0');
  assert.throws(() => withHttpAddress(config, '0.0.0.0:2114'), /--http-address 0\.0\.0\.0:2114 is reachable from other hosts and no http\.token is set/);
});

test('jobs.consume missing or empty: a warning that nothing will be consumed', () => {
  const r = check([...HEAD, ...AMQP, ...JOBS, ...FLAT.slice(0, -1)]);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings, ['.rr.yaml:14:1 jobs: jobs.consume is missing or empty: no pipeline is consumed until one is resumed (jobrunner resume PIPELINE)']);
  const empty = check([...HEAD, ...AMQP, ...JOBS, ...FLAT.slice(0, -1), '  consume: []']);
  assert.deepEqual(empty.warnings, ['.rr.yaml:38:3 jobs.consume: jobs.consume is missing or empty: no pipeline is consumed until one is resumed (jobrunner resume PIPELINE)']);
});

test('an unknown top-level key that is no RoadRunner section is still an error', () => {
  const r = check([...HEAD, ...AMQP, 'metrix:', '  address: x', ...JOBS, ...FLAT]);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /metrix: unknown key `metrix`/);
});
