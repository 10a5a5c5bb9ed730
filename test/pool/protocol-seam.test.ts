// The pool through the protocol seam with a made-up protocol unlike v1 (no job ids, a start handshake,
// a restart request), as goridge is: the pool must need nothing of NDJSON v1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decoded, FrameDecoder, WorkerProtocol } from '../../src/protocol/codec.js';
import { LineSplitter } from '../../src/shared/lines.js';
import { recorder, stopAllPools, testJob, testPool, TIMEOUT, waitFor } from './helpers.js';

after(stopAllPools);

function decodeLine(line: string): Decoded {
  const [word, ...rest] = line.split(' ');
  switch (word) {
    case 'READY':
      return { kind: 'frame', frame: { type: 'ready' } };
    case 'OK':
      return { kind: 'frame', frame: { type: 'ack' } };
    case 'FAIL':
      return { kind: 'frame', frame: { type: 'nack', error: rest.join(' '), requeue: false } };
    case 'RESTART':
      return { kind: 'frame', frame: { type: 'restart' } };
    case 'ENV':
      return { kind: 'frame', frame: { type: 'nack', error: `env ${rest.join(' ')}` } };
    default:
      return { kind: 'invalid', error: `unknown line ${line}` };
  }
}

const hellos: number[] = [];
const lineProtocol: WorkerProtocol = {
  name: 'line',
  multiplexed: false,
  handshake: {
    hello(ctx) {
      hellos.push(ctx.daemonPid);
      return `HELLO ${ctx.daemonPid}\n`;
    },
    timeoutMs: 1500,
  },
  env: () => ({ LINE_PROTO: 'yes' }),
  encodeJob: (job) => Buffer.from(`JOB ${job.id} ${job.body.toString('utf8')}\n`),
  encodeStop: () => 'STOP\n',
  decoder(_ctx, sink): FrameDecoder {
    return new LineSplitter((line) => sink(decodeLine(line)), () => sink({ kind: 'invalid', error: 'line too long' }));
  },
};

const linePool = (pool: Parameters<typeof testPool>[1] = {}, env: Record<string, string> = {}) => testPool('line-protocol.mjs', { numWorkers: 1, maxConcurrency: 8, ...pool }, { protocol: lineProtocol, env });

test('a handshake protocol without job ids: jobs after the answer, one at a time, answers for the job held', TIMEOUT, async () => {
  const t = linePool();
  try {
    await t.startReady();
    assert.deepEqual([...t.readies.values()], [1], 'no job ids: one job at a time whatever the cap');
    assert.ok(hellos.includes(process.pid), 'hello carried the daemon pid');
    const runs = ['sleep', 'x', 'fail', 'env'].map((body, i) => t.pool.run(testJob(body, `l-${i}`), recorder()));
    assert.equal(t.pool.stats().inFlight, 1);
    assert.equal(t.pool.stats().queued, 3);
    assert.deepEqual(await Promise.all(runs), [
      { kind: 'ack' },
      { kind: 'ack' },
      { kind: 'nack', error: 'because', requeue: false },
      { kind: 'nack', error: 'env yes' },
    ]);
  } finally {
    await t.close();
  }
});

test('a restart request gives the job back without an attempt and replaces the worker', TIMEOUT, async () => {
  const t = linePool();
  try {
    await t.startReady();
    assert.deepEqual(await t.pool.run(testJob('restart'), recorder()), { kind: 'released' });
    await waitFor('the worker replaced', () => t.exits.length === 1 && t.readies.size === 2, 10_000);
    assert.deepEqual(t.exits[0], { pid: t.pids[0], reason: 'restart', code: 0, signal: null });
    assert.deepEqual(await t.pool.run(testJob('x'), recorder()), { kind: 'ack' }, 'the replacement works');
    assert.equal(t.pool.stats().crashLoop, 0);
  } finally {
    await t.close();
  }
});

test('no answer to the handshake in time: the start failed, the worker is killed, no job reaches it', TIMEOUT, async () => {
  const t = linePool({ allocateTimeoutMs: 2500 }, { LINE_NO_HELLO: '1' });
  try {
    await t.pool.start();
    assert.equal(t.pool.stats().workers.starting, 1);
    const out = await t.pool.run(testJob('x'), recorder());
    assert.equal(out.kind === 'failed' && out.code, 'E_ALLOCATE_TIMEOUT');
    await waitFor('the silent worker killed', () => t.exits.length >= 1, 10_000);
    assert.deepEqual(t.exits[0], { pid: t.pids[0], reason: 'start_timeout', code: null, signal: 'SIGKILL' });
    assert.ok(t.pool.stats().crashLoop >= 1, 'a failed start counts towards the crash loop');
  } finally {
    await t.close();
  }
});

const { handshake: _unused, ...withoutHandshake } = lineProtocol;

test('an answer while the worker holds no job is a protocol error', TIMEOUT, async () => {
  const t = testPool('line-protocol.mjs', { numWorkers: 1 }, {
    protocol: withoutHandshake,
    command: [process.execPath, '-e', "process.stdout.write('OK\\n'); setInterval(() => {}, 1000)"],
  });
  try {
    await t.pool.start();
    await waitFor('the worker replaced', () => t.exits.length === 1, 10_000);
    assert.equal(t.exits[0]?.reason, 'protocol');
    assert.ok(t.logs.some((l) => l['error'] === 'ack answer while the worker holds no job'));
  } finally {
    await t.close();
  }
});
