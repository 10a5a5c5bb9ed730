// The configuration loader: exact problem text for broken files, defaults, both RoadRunner amqp forms,
// interpolation, the RoadRunner sample, the shipped examples, and secrets never printed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkConfig, checkConfigText, configSchema, embeddedDefaultConfig, formatProblem, loadConfig } from '../../src/config/index.js';
import type { Amqp091ConnectionConfig } from '../../src/drivers/amqp091/options.js';
import { JobrunnerError } from '../../src/shared/errors.js';
import { registerSecrets } from '../helpers/output-log.js';

const FIX = 'test/fixtures/configs';
const lines = (path: string, env: NodeJS.ProcessEnv = {}): string[] => checkConfig(path, env).problems.map(formatProblem);

test('broken configs: every problem as file:line:col path: message', () => {
  const b = `${FIX}/broken`;
  const cases: [string, string[]][] = [
    ['unknown-key', [`${b}/unknown-key.yaml:7:9 jobs.pipelines.orders.config.prefech: unknown key \`prefech\`; did you mean \`prefetch\`?`]],
    ['wrong-type', [`${b}/wrong-type.yaml:4:18 jobs.pool.num_workers: must be an integer, not a string`]],
    ['bad-duration', [`${b}/bad-duration.yaml:4:23 jobs.pool.allocate_timeout: \`5 minutes\` is not a duration (write e.g. 500ms, 30s, 5m, 1h30m, or a number of seconds)`]],
    ['missing-env', [`${b}/missing-env.yaml:3:23 amqp.addr: environment variable \`RABBIT_PASSWORD\` is not set (write \${RABBIT_PASSWORD:-default} to give a default)`]],
    ['consume-unknown', [`${b}/consume-unknown.yaml:3:21 jobs.consume[1]: consume names unknown pipeline \`emails\`; did you mean \`email\`?`]],
    ['bad-driver', [`${b}/bad-driver.yaml:5:15 jobs.pipelines.orders.driver: unsupported driver \`beanstalk\`; supported drivers: amqp091 (alias amqp), amqp1, nats, memory, sqs`]],
    ['yaml-syntax', [`${b}/yaml-syntax.yaml:7:1 YAML syntax error: All mapping items must start at the same column`]],
    ['dead-letter-unknown', [`${b}/dead-letter-unknown.yaml:6:32 jobs.pipelines.orders.dead_letter.pipeline: dead_letter names unknown pipeline \`orders-dlq\`; did you mean \`orders-dead\`?`]],
  ];
  for (const [name, expected] of cases) assert.deepEqual(lines(`${b}/${name}.yaml`), expected, name);
});

test('loadConfig throws one JobrunnerError with the stage code and every problem as a detail line', () => {
  const codes: Record<string, string> = {
    'unknown-key': 'E_CONFIG_SCHEMA',
    'bad-duration': 'E_CONFIG_SCHEMA',
    'missing-env': 'E_CONFIG_ENV',
    'consume-unknown': 'E_CONFIG_REF',
    'yaml-syntax': 'E_CONFIG_YAML',
  };
  for (const [name, code] of Object.entries(codes)) {
    const path = `${FIX}/broken/${name}.yaml`;
    assert.throws(() => loadConfig(path, {}), (err: unknown) => {
      assert.ok(err instanceof JobrunnerError);
      assert.equal(err.code, code, name);
      assert.deepEqual(err.details, lines(path));
      assert.ok(err.message.startsWith(`${path}: 1 problem: line `), err.message);
      return true;
    });
  }
  assert.throws(() => loadConfig(`${FIX}/nope.yaml`, {}), (err: unknown) => {
    assert.ok(err instanceof JobrunnerError);
    assert.equal(err.code, 'E_CONFIG_READ');
    assert.equal(err.message, `${FIX}/nope.yaml: 1 problem: cannot read the configuration: no such file`);
    return true;
  });
});

test('several problems: all reported, in file order, counted in the message', () => {
  const text = ['jobs:', '  consume: [a, zzz]', '  pipelines:', '    a:', '      driver: memory', '      config: { prefetch: 0, colour: red }'].join('\n');
  const r = checkConfigText('c.yaml', text, {});
  assert.deepEqual(r.problems.map(formatProblem), [
    'c.yaml:2:16 jobs.consume[1]: consume names unknown pipeline `zzz`; pipelines: a',
    "c.yaml:4:5 jobs.pipelines.a: no worker command: set server.command, jobs.pool.command or this pipeline's `command`",
    'c.yaml:6:27 jobs.pipelines.a.config.prefetch: must be >= 1, not `0`',
    'c.yaml:6:30 jobs.pipelines.a.config.colour: unknown key `colour`; allowed keys: prefetch, priority, pipeline_size',
  ]);
  assert.equal(r.config, undefined);
});

test('cross-reference checks', () => {
  const base = (pipelines: string, extra = ''): string[] =>
    checkConfigText('c.yaml', `${extra}\njobs:\n  pipelines:\n${pipelines}`, {}).problems.map((p) => `${p.code} ${p.path}: ${p.message}`);
  assert.deepEqual(
    checkConfigText('c.yaml', 'jobs:\n  consume: [a]\n  pipelines:\n    a: { driver: memory }', {}).problems.map((p) => `${p.code} ${p.path}: ${p.message}`),
    ["E_CONFIG_REF jobs.pipelines.a: no worker command: set server.command, jobs.pool.command or this pipeline's `command`"],
  );
  // a pipeline that is not consumed (a dead-letter sink) needs no worker command
  assert.deepEqual(base('    a: { driver: memory }'), []);
  assert.deepEqual(base('    a: { driver: memory, command: w, dead_letter: { pipeline: a } }'), ['E_CONFIG_REF jobs.pipelines.a.dead_letter.pipeline: a pipeline cannot dead-letter to itself']);
  // RoadRunner's amqp driver uses its default address without the section: a warning, not a problem
  assert.deepEqual(base('    a: { driver: amqp, command: w }'), []);
  assert.deepEqual(base('    a: { driver: amqp1, command: w }', 'amqp1: { addr: "amqp://h" }'), ['E_CONFIG_REF jobs.pipelines.a.config: an amqp1 pipeline needs `queue` or `address`']);
  assert.deepEqual(base('    a: { driver: amqp1, command: w, config: { queue: q } }'), ['E_CONFIG_REF jobs.pipelines.a.driver: driver amqp1 needs the top-level `amqp1` section (amqp1: { addr: amqps://user:password@host:5671/ })']);
  assert.deepEqual(base('    a: { driver: memory, command: w, retry: { backoff: { initial: 5m, max: 1m } } }'), ['E_CONFIG_REF jobs.pipelines.a.retry.backoff: initial (5m) is longer than max (1m)']);
  assert.deepEqual(base('    a: { driver: memory, command: w }', 'jobs: {}'), ['E_CONFIG_YAML : YAML syntax error: Map keys must be unique']);
  const none = checkConfigText('c.yaml', 'version: "3"', {});
  assert.deepEqual(none.problems, []);
  assert.deepEqual(none.warnings.map(formatProblem), ['c.yaml:1:1 no pipeline is defined (RoadRunner declares them over RPC, which jobrunner does not serve): nothing will be consumed']);
});

test('defaults come from the schema: RoadRunner amqp defaults, pool, http, logs', () => {
  const text = 'server: { command: "php w.php" }\namqp: {}\njobs:\n  pipelines:\n    a: { driver: amqp }\n    m: { driver: memory }\n';
  const r = checkConfigText('c.yaml', text, {});
  assert.deepEqual(r.problems, []);
  const c = r.config!;
  assert.deepEqual(c.connections['amqp'], { urls: ['amqp://guest:guest@127.0.0.1:5672/'] });
  assert.deepEqual(c.http, { address: '127.0.0.1:2114' });
  assert.deepEqual(c.logs, { level: 'info' });
  assert.deepEqual(c.otel, { enabled: false });
  assert.equal(c.version, '3');
  const [a, m] = c.pipelines;
  assert.equal(a?.driver, 'amqp091');
  assert.deepEqual(a?.command, ['/bin/sh', '-c', 'php w.php']);
  assert.equal(a?.consume, false);
  const { consumerId, ...opts } = a!.options as unknown as Record<string, unknown>;
  assert.match(String(consumerId), /^jobrunner-a-[0-9a-f]{6}$/);
  assert.deepEqual(opts, {
    prefetch: 256, priority: 10, queue: '', exchange: 'amqp.default', exchangeType: 'direct',
    exchangeDurable: false, exchangeAutoDelete: false, exchangeDeclare: true, routingKey: '', durable: false,
    queueAutoDelete: false, exclusive: false, deleteQueueOnStop: false, multipleAck: true,
    queueHeaders: {}, queueDeclare: true,
  });
  assert.deepEqual(m?.options, { prefetch: 10, priority: 10 });
  assert.deepEqual([a!.requeueOnFail, a!.redialTimeoutMs, m!.requeueOnFail, m!.redialTimeoutMs], [false, 60_000, false, 0]);
  assert.ok(a!.pool.numWorkers >= 1);
  assert.deepEqual({ ...a!.pool, numWorkers: 0 }, { numWorkers: 0, maxConcurrency: 256, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 60_000, destroyTimeoutMs: 60_000, execTtlMs: 0, maxWorkerMemoryMb: 0 });
  // the schema holds the same defaults (one source of truth)
  const flat = (configSchema() as { definitions: Record<string, { properties: Record<string, { default?: unknown }> }> }).definitions.amqp091Flat!.properties;
  assert.equal(flat.prefetch?.default, 256);
  assert.equal(flat.exchange?.default, 'amqp.default');
  assert.equal(flat.exchange_type?.default, 'direct');
  assert.equal(flat.priority?.default, 10);
  assert.equal(flat.redial_timeout?.default, 60);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.pipelines) && Object.isFrozen(a!.options));
});

test('per-pipeline pool and command override jobs.pool and server.command key by key', () => {
  const text = [
    'server: { command: ["python3", "w.py"], env: { A: 1, B: x } }',
    'jobs:',
    '  consume: [b]',
    '  pool: { num_workers: 3, max_jobs: 7, allocate_timeout: 2s, supervisor: { exec_ttl: 30s, max_worker_memory: 64 } }',
    '  pipelines:',
    '    a: { driver: memory }',
    '    b: { driver: memory, command: "node b.js", env: { B: y }, pool: { num_workers: "8", supervisor: { exec_ttl: 1m } } }',
  ].join('\n');
  const c = checkConfigText('c.yaml', text, {}).config!;
  const [a, b] = c.pipelines;
  assert.deepEqual(a?.command, ['python3', 'w.py']);
  assert.deepEqual(b?.command, ['/bin/sh', '-c', 'node b.js']);
  assert.deepEqual(a?.env, { A: '1', B: 'x' });
  assert.deepEqual(b?.env, { A: '1', B: 'y' });
  assert.deepEqual(a?.pool, { numWorkers: 3, maxConcurrency: 256, protocol: 'jobrunner', maxJobs: 7, allocateTimeoutMs: 2000, destroyTimeoutMs: 60_000, execTtlMs: 30_000, maxWorkerMemoryMb: 64 });
  assert.deepEqual(b?.pool, { numWorkers: 8, maxConcurrency: 256, protocol: 'jobrunner', maxJobs: 7, allocateTimeoutMs: 2000, destroyTimeoutMs: 60_000, execTtlMs: 60_000, maxWorkerMemoryMb: 64 });
  assert.deepEqual([a?.consume, b?.consume], [false, true]);
});

test('RoadRunner flat and nested amqp forms normalize to the same options', () => {
  const flat = `config: { queue: q, exchange: ex, exchange_type: topic, exchange_durable: true, exchange_auto_delete: true, routing_key: rk,
    prefetch: 5, priority: 3, durable: true, queue_auto_delete: true, exclusive: true, consumer_id: c1, delete_queue_on_stop: true,
    multiple_ack: true, requeue_on_fail: true, redial_timeout: 30, queue_headers: { x-queue-type: quorum }, declare: false }`;
  const nested = `config: { version: 2, prefetch: 5, priority: 3, redial_timeout: 30s,
    exchange: { name: ex, type: topic, durable: true, auto_delete: true, declare: false },
    queue: { name: q, routing_key: rk, durable: true, auto_delete: true, exclusive: true, consumer_id: c1, delete_on_stop: true,
      multiple_ack: true, requeue_on_fail: true, headers: { x-queue-type: quorum }, declare: false } }`;
  const load = (cfg: string) => {
    const r = checkConfigText('c.yaml', `server: { command: w }\namqp: { addr: [ "amqp://a/", "amqp://b/" ] }\njobs:\n  pipelines:\n    p:\n      driver: amqp091\n      ${cfg.replace(/\n\s*/g, " ")}\n`, {});
    assert.deepEqual(r.problems.map(formatProblem), []);
    return r.config!;
  };
  const a = load(flat);
  const b = load(nested);
  assert.deepEqual(a.pipelines[0]?.options, b.pipelines[0]?.options);
  assert.deepEqual((a.connections['amqp'] as Amqp091ConnectionConfig | undefined)?.urls, ['amqp://a/', 'amqp://b/']);
  assert.deepEqual(a.pipelines[0]?.options, {
    prefetch: 5, priority: 3, queue: 'q', exchange: 'ex', exchangeType: 'topic', exchangeDurable: true,
    exchangeAutoDelete: true, exchangeDeclare: false, routingKey: 'rk', durable: true, queueAutoDelete: true, exclusive: true,
    consumerId: 'c1', deleteQueueOnStop: true, multipleAck: true, queueHeaders: { 'x-queue-type': 'quorum' },
    queueDeclare: false,
  });
  // RoadRunner's requeue_on_fail and redial_timeout are pipeline policy, in either form
  for (const c of [a, b]) assert.deepEqual([c.pipelines[0]?.requeueOnFail, c.pipelines[0]?.redialTimeoutMs], [true, 30_000]);
});

test('interpolation: ${VAR}, ${VAR:-default}, plain scalars typed, quoted ones kept strings', () => {
  const text = [
    'server: { command: "${CMD}" }',
    'amqp: { addr: "${AMQP_URL:-amqp://guest:guest@localhost:5672/}" }',
    'http: { address: "${HOST:-127.0.0.1}:${PORT:-2114}", token: "${TOKEN}" }',
    'jobs:',
    '  pipelines:',
    // unquoted ${...} only in block style: { and } end a plain scalar inside a flow mapping
    '    p:',
    '      driver: amqp',
    '      job: "$${LITERAL}"',
    '      config:',
    '        prefetch: ${PREFETCH:-16}',
    '        durable: ${DURABLE}',
    '        queue: "${EMPTY:-fallback}"',
  ].join('\n');
  const c = checkConfigText('c.yaml', text, { CMD: 'php w.php', PORT: '9000', TOKEN: '0123', DURABLE: 'true', EMPTY: '' }).config!;
  assert.deepEqual(c.pipelines[0]?.command, ['/bin/sh', '-c', 'php w.php']);
  assert.deepEqual((c.connections['amqp'] as Amqp091ConnectionConfig | undefined)?.urls, ['amqp://guest:guest@localhost:5672/']);
  assert.deepEqual(c.http, { address: '127.0.0.1:9000', token: '0123' });
  const o = c.pipelines[0]?.options as unknown as { prefetch: number; durable: boolean; queue: string };
  assert.deepEqual([o.prefetch, o.durable, o.queue], [16, true, 'fallback']);
  assert.equal(c.pipelines[0]?.job, '${LITERAL}');
});

test('the RoadRunner sample .rr.yaml validates unchanged', () => {
  const r = checkConfig(`${FIX}/roadrunner.rr.yaml`, {});
  assert.deepEqual(r.problems.map(formatProblem), []);
  const c = r.config!;
  assert.deepEqual(c.pipelines.map((p) => [p.name, p.driver, p.consume]), [
    ['test-1', 'amqp091', true], ['legacy', 'amqp091', false], ['p1', 'amqp091', true], ['test', 'memory', true],
  ]);
  assert.equal((c.connections['amqp'] as Amqp091ConnectionConfig | undefined)?.tls?.clientAuthType, 'no_client_cert');
  assert.equal((c.connections['amqp'] as Amqp091ConnectionConfig | undefined)?.tls?.cert, undefined);
  assert.equal(c.logs.level, 'error');
  assert.equal((c.pipelines[0]?.options as unknown as { queue: string }).queue, 'test-1-queue');
  assert.equal((c.pipelines[2]?.options as unknown as { queueHeaders: object }).queueHeaders['x-queue-mode' as never], 'lazy');
  assert.equal(c.pipelines[0]?.pool.numWorkers, 10);
});

test('secrets never appear in problems or errors', () => {
  const secret = 'Zq7-VeryDistinctiveSecret-4x';
  registerSecrets(secret);
  const path = `${FIX}/broken/secret.yaml`;
  const r = checkConfig(path, {});
  assert.equal(r.problems.length, 2);
  for (const line of r.problems.map(formatProblem)) assert.ok(!line.includes(secret), line);
  for (const p of r.problems) assert.ok(!JSON.stringify(p).includes(secret) || !formatProblem(p).includes(secret));
  assert.throws(() => loadConfig(path, {}), (err: unknown) => {
    assert.ok(err instanceof JobrunnerError);
    assert.ok(!err.message.includes(secret));
    for (const d of err.details) assert.ok(!d.includes(secret), d);
    return true;
  });
  // an unset password variable names the variable, never a value
  const env = checkConfigText('c.yaml', 'amqp: { addr: "amqp://u:${PW}@h/" }', { OTHER: secret }).problems.map(formatProblem);
  assert.ok(env.every((l) => !l.includes(secret)));
});

test('every example in config/ validates', () => {
  const env = { SB_KEY_NAME: 'RootManageSharedAccessKey', SB_KEY: 'k', SB_NAMESPACE: 'ns', JOBRUNNER_TOKEN: 't' };
  const files = readdirSync('config').filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 4);
  for (const f of files) assert.deepEqual(lines(join('config', f), env), [], f);
  const amqp = loadConfig('config/amqp091.yaml', env);
  assert.deepEqual(amqp.pipelines.map((p) => p.name), ['orders', 'emails', 'orders-dead']);
  assert.deepEqual(amqp.pipelines[0]?.deadLetter, { pipeline: 'orders-dead' });
  assert.deepEqual(amqp.pipelines[0]?.retry, { maxAttempts: 5, backoff: { initialMs: 1000, maxMs: 300_000, multiplier: 2, jitter: 0.2 } });
});

test('embeddedDefaultConfig: one consumed memory pipeline, 2 Node.js example workers, http on loopback', () => {
  const c = embeddedDefaultConfig();
  assert.equal(c.file, '<embedded>');
  assert.equal(c.http.address, '127.0.0.1:2114');
  assert.equal(c.pipelines.length, 1);
  const p = c.pipelines[0]!;
  assert.deepEqual([p.name, p.driver, p.consume, p.pool.numWorkers], ['default', 'memory', true, 2]);
  assert.equal(p.command[0], process.execPath);
  assert.match(p.command[1] ?? '', /examples[/\\]node[/\\]worker\.mjs$/);
  assert.ok(Object.isFrozen(c));
});

test('configSchema returns the JSON Schema, a fresh copy each call', () => {
  const s = configSchema();
  assert.equal(s.title, 'jobrunner configuration');
  s.title = 'changed';
  assert.equal(configSchema().title, 'jobrunner configuration');
});
