// `pool.protocol: goridge` end to end: the daemon with real goridge worker processes (the project's PHP
// worker written with pack()/crc32(), and the same worker in Node.js), on the memory driver and on
// amqp091 against RabbitMQ 3.10 and 4.0. Every test counts job ids in (pushed) and out (recorded by the
// worker, acked, dead-lettered). The PHP runs skip with a reason when php is not installed; the Node.js
// runs never skip.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { brokerUrls } from '../../drivers/conformance.js';
import { FIXTURE_WORKERS, httpJson, metricValue, startDaemon, waitFor, type TestDaemon } from '../../helpers/daemon.js';

const phpMissing = spawnSync('php', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0 ? undefined : 'php is not installed (scripts/install-example-runtimes.sh installs php-cli)';

const WORKERS = [
  { name: 'php', argv: ['php', join(FIXTURE_WORKERS, 'goridge-scripted.php')], skip: phpMissing },
  { name: 'node', argv: [process.execPath, join(FIXTURE_WORKERS, 'goridge-scripted.mjs')], skip: undefined },
];

const BACKENDS: { name: string; url?: string }[] = [{ name: 'memory' }, ...(brokerUrls('AMQP091_URLS') ?? []).map((url) => ({ name: `amqp091 ${url.replace(/:[^:@/]*@/, ':***@')}`, url }))];

interface Record {
  id: string;
  pid: number;
  at: number;
  context: { id: string; job: string; driver: string; queue: string; pipeline: string; headers: { [k: string]: string[] } };
  body: string;
  env: { [k: string]: string | false };
}

function records(file: string): Record[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record);
}

for (const worker of WORKERS) {
  for (const backend of BACKENDS) {
    describe(`goridge ${worker.name} worker on ${backend.name}`, { skip: worker.skip ?? false, timeout: 120_000 }, () => {
      const daemons: TestDaemon[] = [];
      const queues: string[] = [];
      const files: string[] = [];

      after(async () => {
        await Promise.all(daemons.map((d) => d.stop()));
        for (const f of files) rmSync(f, { force: true });
        if (backend.url !== undefined && queues.length > 0) {
          const conn = await amqp.connect(backend.url);
          const ch = await conn.createChannel();
          for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
          await conn.close().catch(() => undefined);
        }
      });

      interface Run {
        d: TestDaemon;
        record: string;
        /** pushes a job to `work` through the daemon's HTTP API; the job's id */
        push(payload: unknown, headers?: { [k: string]: string[] }): Promise<string>;
        count(outcome: string, pipeline?: string): Promise<number>;
        queueDepth(which: 'work' | 'dead'): Promise<number>;
      }

      /** a daemon with pipelines `work` (goridge, retry 2 attempts, dead letters to `dead`) and `dead` */
      async function run(opts: { env?: { [k: string]: string }; allocateTimeout?: string; waitReady?: boolean; pool?: string } = {}): Promise<Run> {
        const tag = randomUUID().slice(0, 8);
        const record = `/tmp/jobrunner-goridge-${tag}`;
        files.push(record);
        const q = `jr-goridge-${tag}`;
        const isAmqp = backend.url !== undefined;
        if (isAmqp) queues.push(q, `${q}-dead`);
        const config = (queue: string) => (isAmqp ? `{ queue: ${queue}, exchange: "", routing_key: ${queue}, prefetch: 10, durable: false }` : '{ prefetch: 10 }');
        const env = { SCRIPTED_RECORD: record, ...opts.env };
        const yaml = `
version: "3"
server:
  command: ${JSON.stringify(worker.argv)}
  env: ${JSON.stringify(env)}
${isAmqp ? `amqp: { addr: "${backend.url}" }` : ''}
http: { address: "127.0.0.1:0" }
logs: { level: debug }
jobs:
  consume: ["work", "dead"]
  pool: { protocol: goridge, num_workers: 1, allocate_timeout: ${opts.allocateTimeout ?? '20s'}, destroy_timeout: 20s${opts.pool ?? ''} }
  pipelines:
    work:
      driver: ${isAmqp ? 'amqp091' : 'memory'}
      retry: { max_attempts: 2, backoff: { initial: 50ms, max: 50ms, jitter: 0 } }
      dead_letter: { pipeline: dead }
      config: ${config(q)}
    dead:
      driver: ${isAmqp ? 'amqp091' : 'memory'}
      env: { SCRIPTED_ACK_ALL: "1" }
      config: ${config(`${q}-dead`)}
`;
        const d = await startDaemon(yaml);
        daemons.push(d);
        if (opts.waitReady !== false) await waitFor('the daemon is ready', () => d.daemon.readiness().ok, 30_000);
        return {
          d,
          record,
          async push(payload, headers) {
            const res = await httpJson('POST', `${d.url}/pipelines/work/jobs`, { job: 'App\\Jobs\\Scripted', payload, ...(headers ? { headers } : {}) });
            assert.equal(res.status, 202, JSON.stringify(res.body));
            return res.body.id as string;
          },
          async count(outcome, pipeline = 'work') {
            return metricValue(await d.daemon.metricsText(), 'jobrunner_jobs_total', { pipeline, outcome });
          },
          async queueDepth(which) {
            if (!isAmqp) return 0;
            // a connection per call: one left open would keep the test process alive
            const conn = await amqp.connect(backend.url as string);
            try {
              const ch = await conn.createChannel();
              return (await ch.checkQueue(which === 'work' ? q : `${q}-dead`)).messageCount;
            } finally {
              await conn.close().catch(() => undefined);
            }
          },
        };
      }

      const byId = (rs: Record[], id: string) => rs.filter((r) => r.id === id);

      test('handshake, then ack and complete: acked once each; context and environment as RoadRunner gives them', async () => {
        const r = await run();
        const a = await r.push({ action: 'ack' }, { tenant: ['acme'] });
        const c = await r.push({ action: 'complete' });
        await waitFor('2 acked', async () => (await r.count('ack')) === 2);
        const rs = records(r.record);
        assert.deepEqual(rs.map((x) => x.id).sort(), [a, c].sort(), 'each delivered once');
        const first = byId(rs, a)[0] as Record;
        assert.equal(first.context.job, 'App\\Jobs\\Scripted');
        assert.equal(first.context.pipeline, 'work');
        assert.equal(first.context.driver, backend.url ? 'amqp' : 'memory');
        assert.deepEqual(first.context.headers['tenant'], ['acme']);
        if (backend.url) {
          assert.deepEqual(first.context.headers['rr_id'], [a]);
          assert.deepEqual(first.context.headers['rr_job'], ['App\\Jobs\\Scripted']);
          assert.deepEqual(JSON.parse(first.context.headers['rr_headers']?.[0] ?? 'null').tenant, ['acme']);
        }
        assert.deepEqual(JSON.parse(first.body), { action: 'ack' });
        assert.deepEqual(first.env, { RR_MODE: 'jobs', RR_RELAY: 'pipes', RR_VERSION: '2025.1.0' });
        assert.equal(await r.count('dead_letter'), 0);
        assert.equal(await r.queueDepth('work'), 0);
      });

      test('fail and nack without requeue, and the ERROR frame: the retry policy, then the dead-letter pipeline', async () => {
        const r = await run();
        const ids = [
          await r.push({ action: 'fail', message: 'F' }),
          await r.push({ action: 'nack', message: 'N' }),
          await r.push({ action: 'error', message: 'E' }),
        ];
        await waitFor('3 dead-lettered', async () => (await r.count('dead_letter')) === 3);
        await waitFor('3 acked on dead', async () => (await r.count('ack', 'dead')) === 3);
        const rs = records(r.record);
        for (const id of ids) {
          const seen = byId(rs, id);
          assert.deepEqual(seen.map((x) => x.context.pipeline), ['work', 'work', 'dead'], `job ${id}: two attempts, then the dead-letter pipeline`);
        }
        assert.equal(rs.length, 9);
        assert.equal(await r.count('retry'), 3);
        assert.equal(await r.count('ack'), 0);
        const reasons = r.d.logs.filter((l) => l.msg === 'job dead-lettered to dead').map((l) => String(l['reason']));
        assert.ok(reasons.some((x) => x.startsWith('F ')) && reasons.some((x) => x.startsWith('N ')) && reasons.some((x) => x.startsWith('E ')), reasons.join(' | '));
        assert.equal(await r.queueDepth('work'), 0);
        assert.equal(await r.queueDepth('dead'), 0);
      });

      test('requeue, fail and nack with requeue: back after the delay with the headers, then acked', async () => {
        const r = await run();
        const rq = await r.push({ action: 'requeue', delay: 1, headers: { 'x-again': ['1'] }, ack_when_seen: 2 }, { keep: ['me'] });
        const fl = await r.push({ action: 'fail', requeue: true, delay: 1, headers: { 'x-fail': ['2'] }, ack_when_seen: 2 });
        const nk = await r.push({ action: 'nack', requeue: true, delay: 0, ack_when_seen: 2 });
        await waitFor('3 acked', async () => (await r.count('ack')) === 3);
        const rs = records(r.record);
        assert.equal(rs.length, 6);
        for (const id of [rq, fl, nk]) assert.equal(byId(rs, id).length, 2, `job ${id} delivered twice`);
        const [rq1, rq2] = byId(rs, rq) as [Record, Record];
        assert.deepEqual(rq2.context.headers['x-again'], ['1']);
        assert.deepEqual(rq2.context.headers['keep'], ['me']);
        assert.ok(rq2.at - rq1.at >= 0.9, `requeued after ${rq2.at - rq1.at}s, asked 1s`);
        const [fl1, fl2] = byId(rs, fl) as [Record, Record];
        assert.deepEqual(fl2.context.headers['x-fail'], ['2']);
        assert.ok(fl2.at - fl1.at >= 0.9, `failed with requeue, back after ${fl2.at - fl1.at}s, asked 1s`);
        if (backend.url) {
          // the rr_* headers the worker sent back are not carried as headers of their own
          assert.deepEqual(rq2.context.headers['rr_id'], [rq]);
          assert.equal(JSON.parse(rq2.context.headers['rr_headers']?.[0] ?? '{}').rr_id, undefined);
        }
        assert.equal(await r.count('requeue'), 3);
        assert.equal(await r.count('dead_letter'), 0);
        assert.equal(await r.queueDepth('work'), 0);
      });

      test('the restart request: the job comes back without spending an attempt, on a new worker', async () => {
        const r = await run();
        // max_attempts is 2: were attempts spent, two restarts would dead-letter it
        const id = await r.push({ action: 'restart', ack_when_seen: 3 });
        await waitFor('acked', async () => (await r.count('ack')) === 1);
        const seen = byId(records(r.record), id);
        assert.equal(seen.length, 3);
        assert.equal(new Set(seen.map((x) => x.pid)).size, 3, 'each restart request replaced the worker');
        assert.equal(await r.count('dead_letter'), 0);
        assert.equal(await r.count('retry'), 0);
        assert.equal(await r.queueDepth('work'), 0);
      });

      for (const [action, logged] of [
        ['bad-crc', /a header with a bad CRC \(0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}\)/],
        ['stray', /it reads "stray output\\n" \(the worker printed to stdout/],
        ['crash', /./],
      ] as const) {
        test(`${action}: the job fails (the retry policy runs it again on a new worker), nothing lost`, async () => {
          const r = await run();
          const id = await r.push({ action, ack_when_seen: 2 });
          const ok = await r.push({ action: 'ack' });
          await waitFor('both acked', async () => (await r.count('ack')) === 2);
          const rs = records(r.record);
          const seen = byId(rs, id);
          assert.equal(seen.length, 2);
          assert.notEqual(seen[0]?.pid, seen[1]?.pid, 'the worker was replaced');
          assert.equal(byId(rs, ok).length, 1);
          assert.equal(rs.length, 3);
          assert.equal(await r.count('retry'), 1);
          if (action !== 'crash') {
            const errors = r.d.logs.filter((l) => Object.values(l).some((v) => typeof v === 'string' && logged.test(v)));
            assert.ok(errors.length > 0, `a log line matches ${logged}`);
          }
          assert.equal(await r.queueDepth('work'), 0);
        });
      }

      test('max_jobs: the worker is stopped with the stop frame after 2 jobs and replaced; every job acked once', async () => {
        const r = await run({ pool: ', max_jobs: 2' });
        const ids = new Set<string>();
        for (let i = 0; i < 5; i++) ids.add(await r.push({ action: 'ack' }));
        await waitFor('5 acked', async () => (await r.count('ack')) === 5);
        const rs = records(r.record);
        assert.deepEqual(new Set(rs.map((x) => x.id)), ids);
        assert.equal(rs.length, 5);
        const perPid = new Map<number, number>();
        for (const x of rs) perPid.set(x.pid, (perPid.get(x.pid) ?? 0) + 1);
        assert.ok([...perPid.values()].every((n) => n <= 2), JSON.stringify([...perPid]));
        const retired = () => r.d.logs.filter((l) => l.msg === 'worker exited' && l['pipeline'] === 'work' && l['reason'] === 'max_jobs');
        await waitFor('two workers retired', () => retired().length >= 2);
        assert.ok(retired().every((l) => l['code'] === 0), 'each exited by itself on the stop frame');
        assert.equal(await r.queueDepth('work'), 0);
      });

      test('exec_ttl: a job past it is killed with its worker, runs again under the retry policy, and is acked', async () => {
        const r = await run({ pool: ', supervisor: { exec_ttl: 1s }' });
        const id = await r.push({ action: 'sleep', ms: 10_000, ack_when_seen: 2 });
        await waitFor('acked', async () => (await r.count('ack')) === 1, 30_000);
        const seen = byId(records(r.record), id);
        assert.equal(seen.length, 2);
        assert.notEqual(seen[0]?.pid, seen[1]?.pid);
        assert.equal(await r.count('retry'), 1);
        assert.ok(r.d.logs.some((l) => l.msg === 'worker exited' && l['reason'] === 'timeout'));
        assert.equal(await r.queueDepth('work'), 0);
      });

      test('stop during a job: the job finishes and is acked, the worker exits on the stop frame', async () => {
        const r = await run();
        const id = await r.push({ action: 'sleep', ms: 1500 });
        await waitFor('the job started', () => records(r.record).length === 1);
        await r.d.stop();
        assert.equal(await r.count('ack'), 1);
        assert.deepEqual(records(r.record).map((x) => x.id), [id]);
        const exits = r.d.logs.filter((l) => l.msg === 'worker exited');
        assert.ok(exits.length >= 1 && exits.every((l) => l['code'] === 0 && l['signal'] === null), JSON.stringify(exits));
        assert.equal(await r.queueDepth('work'), 0);
        assert.equal(await r.queueDepth('dead'), 0);
      });

      test('a worker that never answers the pid frame is a failed start: killed, started again, handed no job', async () => {
        const r = await run({ env: { SCRIPTED_NO_HELLO: '1' }, allocateTimeout: '1s', waitReady: false });
        await waitFor('consuming', () => r.d.daemon.health().pipelines['work']?.consuming === true || r.d.logs.some((l) => l.msg === 'consuming' && l['pipeline'] === 'work'));
        const id = await r.push({ action: 'ack' });
        const killed = () => r.d.logs.filter((l) => l.msg === 'worker did not answer the start handshake; killing it' && l['pipeline'] === 'work');
        await waitFor('two failed starts', () => killed().length >= 2, 30_000);
        assert.equal(killed()[0]?.['timeoutMs'], 1000);
        assert.deepEqual(records(r.record), [], 'no job reached a worker that never said it was up');
        assert.equal(await r.count('ack'), 0);
        assert.equal(await r.count('dead_letter'), 0);
        assert.equal(await r.count('retry'), 0, 'no attempt was spent on the job');
        await r.d.stop();
        // the job is still the broker's (the memory driver's queue is lost on exit by design)
        if (backend.url) assert.equal(await r.queueDepth('work'), 1, `job ${id} went back to the queue`);
      });
    });
  }
}
