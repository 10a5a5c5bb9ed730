// Delayed pushes on a nats-server with message scheduling (2.12+; a private server from
// scripts/fetch-nats-server.sh, own port and data folder, removed after): a stream the driver creates allows
// schedules, a delayed push is stored as a schedule (Nats-Schedule / Nats-Schedule-Target on a subject of its
// own, no delay stream) and comes back on the pipeline's subject after its delay with its job, id, payload and
// headers; an existing stream without schedules is never changed and keeps the delay stream; and a daemon
// restarted while jobs are scheduled loses none and runs none twice.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredMsg } from '@nats-io/jetstream';
import { collect, publish } from './conformance.js';
import { createNatsConnection } from '../../src/drivers/nats/connection.js';
import type { BrokerPipeline, DriverConnection } from '../../src/drivers/driver.js';
import type { NatsPipelineOptions } from '../../src/drivers/nats/options.js';
import { delayStreamName } from '../../src/drivers/nats/delay.js';
import { scheduleSubjects } from '../../src/drivers/nats/schedule.js';
import { silentLogger } from '../../src/observability/logger.js';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { readRecord } from '../helpers/faults.js';
import { NatsAdmin, PrivateNats, latestNatsServer, natsPipeline, scriptedNatsYaml, type NatsPipelineConfig } from '../helpers/nats.js';

const T = 120_000;
const latest = latestNatsServer();
const missing = latest.missing;

async function streamNames(admin: NatsAdmin): Promise<string[]> {
  const { jsm } = await admin.conn();
  const names: string[] = [];
  for await (const s of jsm.streams.list()) names.push(s.config.name);
  return names;
}

/** the schedules a stream holds now: its messages on jobrunner's schedule subjects */
async function schedules(admin: NatsAdmin, stream: string): Promise<StoredMsg[]> {
  const { jsm } = await admin.conn();
  const info = await jsm.streams.info(stream, { subjects_filter: scheduleSubjects(stream) });
  const out: StoredMsg[] = [];
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    if (m !== null) out.push(m);
  }
  return out;
}

describe(`nats delays on nats-server 2.12+ (message scheduling)`, { concurrency: false }, () => {
  if (missing !== undefined) {
    // under CI=true the binary is part of the setup (.ci/run fetches it): its absence fails, never skips
    if (process.env['CI'] === 'true') test('a nats-server 2.12+ is there', () => assert.fail(`${missing} (CI=true)`));
    else test('a nats-server 2.12+ is there', { skip: missing }, () => undefined);
    return;
  }
  let server: PrivateNats;
  let admin: NatsAdmin;
  const conns: DriverConnection[] = [];
  const pipes: BrokerPipeline[] = [];
  before(async () => {
    server = await PrivateNats.start(latest.bin);
    admin = new NatsAdmin(server.url);
  });
  after(async () => {
    for (const p of pipes.reverse()) await p.close().catch(() => undefined);
    for (const c of conns.reverse()) await c.stop().catch(() => undefined);
    await admin?.cleanup();
    await server?.destroy();
  });
  const cfg = (over: Partial<NatsPipelineOptions> = {}): NatsPipelineConfig => {
    const c = natsPipeline(`sched-${randomUUID().slice(0, 8)}`, over);
    admin.track(c.options.stream);
    return c;
  };
  const open = async (c: NatsPipelineConfig): Promise<BrokerPipeline> => {
    const conn = createNatsConnection({ config: { urls: [server.url] }, logger: silentLogger(), backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 }, reconnectWaitMs: 200 });
    conns.push(conn);
    await conn.start();
    const p = conn.pipeline(c);
    pipes.push(p);
    await p.declare();
    return p;
  };

  test('a stream the driver creates allows schedules and takes the schedule subjects; no delay stream', { timeout: T }, async () => {
    const c = cfg();
    await open(c);
    const { jsm } = await admin.conn();
    const info = await jsm.streams.info(c.options.stream);
    assert.equal(info.config.allow_msg_schedules, true);
    assert.deepEqual(info.config.subjects, [c.options.subject, scheduleSubjects(c.options.stream)]);
    assert.ok(!(await streamNames(admin)).includes(delayStreamName(c.options.stream)), 'no delay stream');
  });

  test('a delayed push is a schedule in the stream, then the job on its subject after the delay, headers intact', { timeout: T }, async () => {
    const c = cfg();
    const pipe = await open(c);
    const started = Date.now();
    const id = await publish(pipe, { delayMs: 2000, body: Buffer.from('{"later":true}'), headers: { tenant: ['acme'], multi: ['a', 'b'] }, job: 'SendLater' });
    // stored as a schedule, not yet on the pipeline's subject
    const held = await schedules(admin, c.options.stream);
    assert.equal(held.length, 1, 'one schedule in the stream');
    const s = held[0] as StoredMsg;
    assert.match(s.subject, new RegExp(`^_jobrunner\\.schedule\\.${c.options.stream}\\.`));
    assert.match(s.header.get('Nats-Schedule'), /^@at \d{4}-\d\d-\d\dT/);
    assert.equal(s.header.get('Nats-Schedule-Target'), c.options.subject);
    assert.equal(s.header.get('Nats-Msg-Id'), id);
    assert.equal(await pipe.readyCount(), 0, 'nothing on the subject before the delay');
    assert.ok(!(await streamNames(admin)).includes(delayStreamName(c.options.stream)), 'no delay stream');

    const [d] = await collect(pipe, 1);
    const waited = Date.now() - started;
    assert.ok(d !== undefined);
    assert.ok(waited >= 2000, `delivered after ${waited} ms, before its 2000 ms delay`);
    assert.equal(d.id, id);
    assert.equal(d.job, 'SendLater');
    assert.equal(d.body.toString(), '{"later":true}');
    assert.equal(d.attempt, 1);
    assert.deepEqual(d.headers['tenant'], ['acme']);
    assert.deepEqual(d.headers['multi'], ['a', 'b']);
    // the server's own headers are not job headers
    assert.equal(d.headers['Nats-Scheduler'], undefined);
    assert.equal(d.headers['Nats-Schedule-Next'], undefined);
    // the message on the subject is the schedule's product, and the schedule is gone
    const { jsm } = await admin.conn();
    const fired = await jsm.streams.getMessage(c.options.stream, { last_by_subj: c.options.subject });
    assert.equal(fired?.header.get('Nats-Scheduler'), s.subject);
    assert.equal(fired?.header.get('Nats-Schedule-Next'), 'purge');
    await d.ack();
    assert.deepEqual(await schedules(admin, c.options.stream), []);
  });

  test('an existing stream without schedules is not changed: delayed pushes take the delay stream', { timeout: T }, async () => {
    const c = cfg();
    const { jsm } = await admin.conn();
    await jsm.streams.add({ name: c.options.stream, subjects: [c.options.subject] });
    const pipe = await open(c);
    const info = await jsm.streams.info(c.options.stream);
    assert.notEqual(info.config.allow_msg_schedules, true, 'the stream was changed');
    assert.deepEqual(info.config.subjects, [c.options.subject]);
    assert.ok((await streamNames(admin)).includes(delayStreamName(c.options.stream)), 'the delay stream is there');
    const started = Date.now();
    const id = await publish(pipe, { delayMs: 1500, body: Buffer.from('old way') });
    assert.equal((await jsm.streams.info(delayStreamName(c.options.stream))).state.messages, 1, 'held in the delay stream');
    const [d] = await collect(pipe, 1);
    assert.ok(Date.now() - started >= 1500);
    assert.equal(d?.id, id);
    await d?.ack();
  });

  test('the daemon restarted while jobs are scheduled: each runs once, none lost', { timeout: 180_000 }, async (tc) => {
    const dir = mkdtempSync(join(tmpdir(), 'jobrunner-nats-sched-'));
    const record = join(dir, 'record');
    const stream = `JRS_${randomUUID().slice(0, 8)}`;
    admin.track(stream);
    const yaml = scriptedNatsYaml({ addr: server.url, record, config: `stream: ${stream}, subject: jrs.${stream}, prefetch: 8` });
    const N = 30;
    const ids: string[] = [];
    const first = await startDaemon(yaml);
    let second: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      await waitFor('first daemon ready', () => first.daemon.readiness().ok, 30_000);
      // due well after the first daemon is gone (a restart takes a second or two, even on a loaded machine)
      for (let i = 0; i < N; i++) ids.push(await first.daemon.push('work', { job: 'Later', payload: { action: 'ack', i }, delay: 12 }));
      assert.ok(first.logs.some((l) => /delayed pushes: nats-server .* message scheduling/.test(l.msg)), 'the daemon says it schedules natively');
      await first.stop();
      const waiting = (await schedules(admin, stream)).length;
      const early = readRecord(record).length;
      assert.equal(waiting + early, N, `${waiting} scheduled + ${early} done before the restart`);
      assert.ok(waiting > 0, 'jobs were still scheduled when the daemon stopped');
      assert.ok(!(await streamNames(admin)).includes(delayStreamName(stream)), 'no delay stream');
      second = await startDaemon(yaml);
      await waitFor('every job run', () => new Set(readRecord(record).map((r) => r.id)).size >= N, 90_000);
      // a moment for a duplicate to show up, were there one: the consumer has nothing pending
      const { jsm } = await admin.conn();
      await waitFor(
        'nothing pending',
        async () => {
          const c = await jsm.consumers.info(stream, 'jobrunner-work');
          return c.num_pending === 0 && c.num_ack_pending === 0;
        },
        30_000,
        200,
      );
      const seen = readRecord(record);
      const distinct = new Set(seen.map((r) => r.id));
      const lost = ids.filter((id) => !distinct.has(id));
      const duplicates = seen.length - distinct.size;
      tc.diagnostic(`published ${N} / scheduled at the restart ${waiting} / run ${distinct.size} / lost ${lost.length} / duplicates ${duplicates}`);
      assert.deepEqual(lost, []);
      assert.equal(duplicates, 0);
      assert.deepEqual(await schedules(admin, stream), []);
    } finally {
      await first.stop();
      await second?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
