// The daemon end to end on the nats driver against the nats-server in NATS_URLS, with real worker
// processes (test/fixtures/workers/scripted.mjs, which records "<id> <attempt>" for every job it gets):
// a retry is a nak(delay) (the same message back after the delay, attempt + 1, nothing re-published),
// jobs that run out of attempts go to the dead-letter pipeline, a job three times as long as ack_wait is
// delivered once, /pipelines shows the consumer's pending count, and kill -9 of the daemon (the built CLI)
// with jobs in flight loses nothing. Every test counts ids.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { FIXTURE_WORKERS, httpJson, startDaemon, waitFor } from '../helpers/daemon.js';
import { CLI, freePort, readRecord, spawnServe, within } from '../helpers/faults.js';
import { brokerUrls } from '../drivers/conformance.js';
import { NatsAdmin } from '../helpers/nats.js';

const SCRIPTED = join(FIXTURE_WORKERS, 'scripted.mjs');
const urls = brokerUrls('NATS_URLS');
const url = urls?.[0] ?? 'nats://127.0.0.1:4222';
const T = { timeout: 90_000 };
const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);

let dir: string;
let admin: NatsAdmin;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobrunner-nats-daemon-'));
  admin = new NatsAdmin(url);
});
after(async () => {
  await admin.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** a unique stream and subject; tracked for deletion */
function names(prefix: string): { stream: string; subject: string } {
  const id = randomUUID().slice(0, 8);
  const stream = `JRD_${prefix}_${id}`;
  admin.track(stream);
  return { stream, subject: `jrd.${prefix}.${id}` };
}

interface PipelineSpec {
  at: { stream: string; subject: string };
  /** more keys of the pipeline's config, as YAML flow mapping entries */
  config?: string;
  retry?: string;
  deadLetter?: string;
}

/** the daemon's config: the scripted worker recording into `record`, consuming `work`, these nats pipelines */
function yaml(record: string, pipelines: Record<string, PipelineSpec>): string {
  const lines = [
    'version: "3"',
    `server: { command: ${JSON.stringify([process.execPath, SCRIPTED])}, env: { SCRIPTED_RECORD: ${JSON.stringify(record)} } }`,
    `nats: { addr: ${JSON.stringify(url)} }`,
    'http: { address: "127.0.0.1:0" }',
    'logs: { level: info }',
    'jobs:',
    '  consume: [work]',
    '  pool: { num_workers: 2, destroy_timeout: 5s, allocate_timeout: 30s }',
    '  pipelines:',
  ];
  for (const [name, p] of Object.entries(pipelines)) {
    lines.push(`    ${name}:`, '      driver: nats');
    if (p.retry !== undefined) lines.push(`      retry: ${p.retry}`);
    if (p.deadLetter !== undefined) lines.push(`      dead_letter: { pipeline: ${p.deadLetter} }`);
    lines.push(`      config: { stream: ${p.at.stream}, subject: ${p.at.subject}${p.config !== undefined ? `, ${p.config}` : ''} }`);
  }
  return lines.join('\n');
}

/** publishes RoadRunner envelopes with a JSON payload for the scripted worker; returns the ids */
async function push(subject: string, payloads: unknown[]): Promise<string[]> {
  const { js } = await admin.conn();
  const ids: string[] = [];
  for (const p of payloads) {
    const id = randomUUID();
    ids.push(id);
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    const envelope = { job: 'Test', id, payload: Buffer.from(JSON.stringify(p)).toString('base64'), options: { priority: 10, pipeline: 'test', delay: 0, auto_ack: false } };
    await js.publish(subject, JSON.stringify(envelope), { msgID: id, headers: h });
  }
  return ids;
}

async function consumerState(stream: string, consumer: string): Promise<{ pending: number; ackPending: number; redelivered: number }> {
  const { jsm } = await admin.conn();
  const i = await jsm.consumers.info(stream, consumer);
  return { pending: i.num_pending, ackPending: i.num_ack_pending, redelivered: i.num_redelivered };
}

describe('daemon on nats', { skip: urls === undefined ? 'NATS_URLS is not set' : false, concurrency: false }, () => {
  test('a retry is nak(delay): the same message back after the backoff with attempt + 1, nothing re-published', T, async () => {
    const w = names('retry');
    const dead = names('retrydead');
    const record = join(dir, `${w.stream}.record`);
    const d = await startDaemon(
      yaml(record, {
        work: { at: w, retry: '{ max_attempts: 3, backoff: { initial: 1500ms, max: 1500ms, jitter: 0 } }', deadLetter: 'dead' },
        dead: { at: dead },
      }),
    );
    try {
      await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
      const [id] = await push(w.subject, [{ action: 'nack', error: 'not yet', ack_from_attempt: 2 }]);
      const seen: { attempt: number; at: number }[] = [];
      await waitFor(
        'attempt 2',
        () => {
          const r = readRecord(record).filter((x) => x.id === id);
          while (seen.length < r.length) seen.push({ attempt: r[seen.length]!.attempt, at: Date.now() });
          return seen.length >= 2;
        },
        20_000,
        10,
      );
      await waitFor('acked', async () => (await consumerState(w.stream, 'jobrunner-work')).ackPending === 0);
      assert.deepEqual(
        seen.map((s) => s.attempt),
        [1, 2],
      );
      const gap = seen[1]!.at - seen[0]!.at;
      assert.ok(gap >= 1500 - 50, `attempt 2 came ${gap} ms after attempt 1 (backoff 1500 ms)`);
      const { jsm } = await admin.conn();
      assert.equal((await jsm.streams.info(w.stream)).state.messages, 1, 'nak(delay): no copy was published');
      const s = await consumerState(w.stream, 'jobrunner-work');
      assert.equal(s.redelivered, 0);
      assert.equal(s.pending, 0);
    } finally {
      await d.stop();
    }
  });

  test('a job that runs out of attempts goes to dead_letter.pipeline with the reason, and leaves the stream settled', T, async () => {
    const w = names('dl');
    const dead = names('dldead');
    const record = join(dir, `${w.stream}.record`);
    const d = await startDaemon(
      yaml(record, {
        work: { at: w, retry: '{ max_attempts: 2, backoff: { initial: 200ms, jitter: 0 } }', deadLetter: 'dead' },
        dead: { at: dead },
      }),
    );
    try {
      await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
      const ids = await push(w.subject, [{ action: 'nack', error: 'always' }, { action: 'ack' }]);
      const { js, jsm } = await admin.conn();
      await waitFor('the dead letter', async () => (await jsm.streams.info(dead.stream)).state.messages >= 1, 20_000);
      await waitFor('work settled', async () => {
        const s = await consumerState(w.stream, 'jobrunner-work');
        return s.pending === 0 && s.ackPending === 0;
      });
      await jsm.consumers.add(dead.stream, { durable_name: 'peek', ack_policy: AckPolicy.Explicit });
      const m = await (await js.consumers.get(dead.stream, 'peek')).next({ expires: 5000 });
      assert.ok(m);
      const e = JSON.parse(m.string()) as { id: string };
      assert.equal(e.id, ids[0]);
      assert.match(m.headers?.get('x-jobrunner-dead-reason') ?? '', /always \(after 2 attempts\)/);
      assert.deepEqual(
        readRecord(record)
          .filter((r) => r.id === ids[0])
          .map((r) => r.attempt),
        [1, 2],
      );
      assert.equal(readRecord(record).filter((r) => r.id === ids[1]).length, 1);
    } finally {
      await d.stop();
    }
  });

  test('a job three times as long as ack_wait is delivered once; /pipelines shows the pending count', T, async () => {
    const w = names('long');
    const idle = names('idle');
    const record = join(dir, `${w.stream}.record`);
    const d = await startDaemon(
      yaml(record, {
        work: { at: w, config: 'ack_wait: 1s' },
        idle: { at: idle },
      }),
    );
    try {
      await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
      const [id] = await push(w.subject, [{ action: 'sleep', ms: 3500 }]);
      await push(idle.subject, [{}, {}, {}]);
      await waitFor('done', async () => (await consumerState(w.stream, 'jobrunner-work')).ackPending === 0 && readRecord(record).length >= 1, 20_000);
      assert.deepEqual(readRecord(record), [{ id, attempt: 1 }]);
      assert.equal((await consumerState(w.stream, 'jobrunner-work')).redelivered, 0);
      const r = await httpJson('GET', `${d.url}/pipelines`);
      const row = (r.body as Array<{ pipeline: string; ready: number | null }>).find((p) => p.pipeline === 'idle');
      assert.equal(row?.ready, 3);
    } finally {
      await d.stop();
    }
  });

  test('kill -9 of the daemon with jobs in flight: each comes back to the next daemon, 0 lost', { ...T, skip: cliMissing }, async (tc) => {
    const w = names('kill');
    const record = join(dir, `${w.stream}.record`);
    const file = join(dir, `${w.stream}.yaml`);
    writeFileSync(
      file,
      yaml(record, { work: { at: w, config: 'ack_wait: 2s, prefetch: 4' } }).replace('address: "127.0.0.1:0"', `address: "127.0.0.1:${await freePort()}"`),
    );
    const { jsm } = await admin.conn();
    await jsm.streams.add({ name: w.stream, subjects: [w.subject] });
    const ids = await push(
      w.subject,
      Array.from({ length: 20 }, () => ({ action: 'sleep', ms: 400 })),
    );
    const first = spawnServe(file);
    try {
      await waitFor('jobs in flight', () => readRecord(record).length >= 4, 30_000);
      first.child.kill('SIGKILL');
      await within(first.exited, 10_000, 'the killed daemon exits');
      const atKill = new Set(readRecord(record).map((r) => r.id));
      const second = spawnServe(file);
      try {
        await waitFor(
          'every job settled',
          async () => {
            const s = await consumerState(w.stream, 'jobrunner-work');
            return s.pending === 0 && s.ackPending === 0 && new Set(readRecord(record).map((r) => r.id)).size === ids.length;
          },
          60_000,
          100,
        );
      } finally {
        second.kill();
        await second.exited;
      }
      const rec = readRecord(record);
      const seen = new Set(rec.map((r) => r.id));
      const lost = ids.filter((id) => !seen.has(id));
      const again = rec.filter((r) => r.attempt > 1).map((r) => r.id);
      tc.diagnostic(`published ${ids.length}, reached a worker ${seen.size}, in flight at the kill ${atKill.size}, delivered again ${again.length}, lost ${lost.length}`);
      assert.deepEqual(lost, []);
      assert.ok(again.length >= 1, 'the jobs held at the kill came back');
      for (const id of again) assert.ok(atKill.has(id), `${id} delivered again but was not in flight at the kill`);
    } finally {
      first.kill();
    }
  });
});
