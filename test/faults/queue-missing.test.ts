// The queue deleted under a consuming daemon (issue 12 item 5), on the shared brokers with unique queue
// names: /health and /pipelines say `consuming: false` with an error naming the queue for as long as it
// does not exist, and consuming again by themselves once it does. A pipeline that declares (amqp091 with
// `declare: true`, amqp1 on RabbitMQ 4) declares it again by itself; one that does not (amqp091 with
// `declare: false`, amqp1 on RabbitMQ 3.x, whose plugin cannot declare) waits for the operator. The jobs
// published after it is back are all done: published = acked, by id.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpJson, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, readRecord, tally, within, type Target } from '../helpers/faults.js';

const { targets, skip } = await faultTargets({ minAmqp1Major: 3 });
const T = { timeout: 120_000 };

interface Row {
  pipeline: string;
  consuming: boolean;
  active: number;
  error: string | null;
}

/** /health's and /pipelines' view of the pipeline `work` */
async function seen(d: TestDaemon): Promise<{ status: number; health: { consuming: boolean; error?: string }; row: Row }> {
  const h = await httpJson('GET', `${d.url}/health`);
  const rows = (await httpJson('GET', `${d.url}/pipelines`)).body as Row[];
  const row = rows.find((r) => r.pipeline === 'work');
  assert.ok(row, '/pipelines lists work');
  return { status: h.status, health: h.body.pipelines.work, row };
}

for (const t of targets) {
  // the pipelines that declare their queue (amqp091 by default, amqp1 on RabbitMQ 4) and the ones that do not
  const modes: Array<{ declares: boolean; config: string }> =
    t.driver === 'amqp091'
      ? [
          { declares: true, config: '' },
          { declares: false, config: 'declare: false' },
        ]
      : [{ declares: t.major >= 4, config: '' }];
  describe(`the queue deleted under a consuming daemon: ${t.label}`, { skip, concurrency: false }, () => {
    for (const m of modes) {
      const how = m.declares ? 'declared again by the daemon' : 'created again by the operator';
      test(`${m.config || 'declare: default'}: consuming false with the queue named while it is missing, then consuming again (${how})`, T, async (tc) => {
        await run(t, m, tc.diagnostic.bind(tc));
      });
    }
  });
}

async function run(t: Target, m: { declares: boolean; config: string }, say: (line: string) => void): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix('queue-missing');
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-queue-missing-'));
  const record = join(dir, 'record');
  await admin.queue(q);
  const d = await startDaemon(
    daemonYaml({
      target: t,
      env: { SCRIPTED_RECORD: record },
      pool: '{ num_workers: 1, destroy_timeout: 2s, allocate_timeout: 30s }',
      pipelines: [{ name: 'work', queue: q, ...(m.config ? { config: m.config } : {}) }],
    }),
    { level: 'info' },
  );
  const done = (ids: string[]): boolean => {
    const got = new Set(readRecord(record).map((r) => r.id));
    return ids.every((id) => got.has(id));
  };
  try {
    await waitFor('consuming', () => d.daemon.readiness().ok, 30_000);
    const before = await admin.publish(q, Array.from({ length: 5 }, () => ({ id: randomUUID(), payload: {} })));
    await waitFor('the first jobs done', () => done(before), 30_000);

    await admin.deleteQueue(q);
    if (!m.declares) {
      // nobody declares it: it is missing until the operator acts, and the daemon says so
      const missing = await waitFor(
        '/health and /pipelines say the queue is missing',
        async () => {
          const s = await seen(d);
          return s.status === 503 && !s.health.consuming && !s.row.consuming && s.row.error?.includes(q) && s.health.error?.includes(q) ? s : undefined;
        },
        60_000,
        200,
      );
      say(`while missing: /health ${missing.status} consuming=${missing.health.consuming}; /pipelines error: ${missing.row.error}`);
      assert.equal(d.daemon.readiness().ok, false, '/ready is 503 too');
      await admin.queue(q);
    }
    // consuming again by itself (the queue declared again by the daemon, or created again above)
    const back = await waitFor(
      'the queue there and consumed again',
      async () => {
        if (!(await admin.exists(q))) return undefined;
        const s = await seen(d);
        return s.status === 200 && s.health.consuming && s.row.consuming && s.row.error === null ? s : undefined;
      },
      60_000,
      200,
    );
    say(`after: /health ${back.status} consuming=${back.health.consuming}; /pipelines error: ${back.row.error}`);
    const after = await admin.publish(q, Array.from({ length: 10 }, () => ({ id: randomUUID(), payload: {} })));
    await waitFor('the jobs published after it is back done', () => done(after), 60_000);
    // acked: nothing held by the daemon, nothing ready in the queue
    await waitFor('nothing held, nothing queued', async () => (await seen(d)).row.active === 0 && (await admin.count(q)) === 0, 30_000, 200);
    const got = readRecord(record).map((r) => r.id);
    const count = tally([...before, ...after], got.filter((id) => before.includes(id) || after.includes(id)));
    say(describeTally(`${t.label}, ${m.declares ? 'declared again' : 'created again'}`, count));
    assert.equal(count.lost, 0, `lost: ${count.lostIds.join(' ')}`);
  } finally {
    await within(d.stop(), 30_000, 'daemon stop');
    admin.track(q);
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
