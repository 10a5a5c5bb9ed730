// Shutdown is bounded (SPEC §8, issue 12 item 4): from SIGTERM, the built CLI exits within destroy_timeout
// plus the fixed escalation of src/shared/shutdown.ts (SHUTDOWN_ESCALATION_MS, what docs/kubernetes.md
// budgets), whatever the workers do: workers that ignore `stop` and SIGTERM while holding jobs longer than
// destroy_timeout, and well-behaved workers whose jobs outlast it. Nothing they held is lost: every
// message is still queued after the exit, none acked (published = still queued, by id). Each case prints
// the measured exit time beside the bound; the assertion adds a generous 10 s for a loaded machine.
// amqp091 and amqp1 on both shared RabbitMQs (amqp1 on 3.10 consumes queues declared here).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/daemon.js';
import { Admin, CLI, SCRIPTED, daemonYaml, describeTally, faultTargets, freePort, readRecord, spawnServe, tally, within, type Target } from '../helpers/faults.js';
import { SHUTDOWN_ESCALATION_MS } from '../../src/shared/shutdown.js';

const { targets, skip } = await faultTargets({ minAmqp1Major: 3 });
const cliMissing = existsSync(CLI) ? false : 'dist/cli/main.js missing: run npm run build';
if (cliMissing && process.env['CI'] === 'true') throw new Error(`${cliMissing} (CI=true)`);
const STUBBORN = new URL('./workers/stubborn.mjs', import.meta.url).pathname;
/** the margin this test adds to the promise, for a loaded machine */
const MARGIN_MS = 10_000;

interface Case {
  name: string;
  /** the worker command; each job is held past destroy_timeout */
  command: string[];
  payload: (id: string) => unknown;
  destroyTimeoutMs: number;
}

const STUBBORN_CASE = (destroyTimeoutMs: number): Case => ({
  name: `workers that ignore stop and SIGTERM, holding jobs forever, destroy_timeout ${destroyTimeoutMs / 1000} s`,
  command: [process.execPath, STUBBORN],
  payload: (id) => ({ n: id }),
  destroyTimeoutMs,
});
const CASES: Case[] = [
  STUBBORN_CASE(2000),
  // the scripted worker exits on `stop` only once its job is done: it is SIGTERMed, and dies of it
  {
    name: 'workers whose jobs (with follow-ups) outlast destroy_timeout 2 s',
    command: [process.execPath, SCRIPTED],
    payload: (id) => ({ action: 'sleep', ms: 120_000, then: 'echo', n: id }),
    destroyTimeoutMs: 2000,
  },
];

for (const [i, t] of targets.entries()) {
  describe(`shutdown bound: ${t.label}`, { skip: skip || cliMissing, concurrency: false }, () => {
    // once, a destroy_timeout longer than the escalation and the margin: waiting it twice (stop, then the
    // workers' exit, as before issue 12) would exceed the bound
    for (const c of i === 0 ? [...CASES, STUBBORN_CASE(20_000)] : CASES) {
      const bound = c.destroyTimeoutMs + SHUTDOWN_ESCALATION_MS;
      test(`SIGTERM with ${c.name}: exits 0 within destroy_timeout + ${SHUTDOWN_ESCALATION_MS / 1000} s, every message back`, { timeout: bound + MARGIN_MS + 90_000 }, async (tc) => {
        await run(t, c, bound, tc.diagnostic.bind(tc));
      });
    }
  });
}

async function run(t: Target, c: Case, bound: number, say: (line: string) => void): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix('shutdown-bound');
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-shutdown-'));
  const record = join(dir, 'record');
  // declared here: amqp1 cannot declare on RabbitMQ 3.x
  for (const name of [q, `${q}-echo`]) await admin.queue(name);
  const ids = Array.from({ length: 6 }, () => randomUUID());
  const file = join(dir, 'jobs.yaml');
  writeFileSync(
    file,
    daemonYaml({
      target: t,
      env: { SCRIPTED_RECORD: record },
      http: `127.0.0.1:${await freePort()}`,
      pool: `{ num_workers: 2, max_concurrency: 1, destroy_timeout: ${c.destroyTimeoutMs}ms, allocate_timeout: 30s }`,
      pipelines: [
        { name: 'work', queue: q, command: c.command },
        { name: 'echo', queue: `${q}-echo`, consume: false },
      ],
    }),
  );
  const cli = spawnServe(file);
  try {
    await admin.publish(q, ids.map((id) => ({ id, payload: c.payload(id) })));
    // both workers hold a job (the other jobs wait in the daemon's prefetch)
    await waitFor('a job on each worker', () => readRecord(record).length >= 2, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; daemon output: ${cli.output().slice(-3000)}`);
    });
    const t0 = performance.now();
    cli.child.kill('SIGTERM');
    const exit = await within(cli.exited, bound + MARGIN_MS + 60_000, 'exit after SIGTERM');
    const took = Math.round(performance.now() - t0);
    say(`${t.label}, ${c.name}: exit ${exit.code} ${took} ms after SIGTERM (bound ${bound} ms, asserted below ${bound + MARGIN_MS} ms)`);
    assert.equal(exit.code, 0, cli.output().slice(-3000));
    assert.ok(took < bound + MARGIN_MS, `exit took ${took} ms, over destroy_timeout + ${SHUTDOWN_ESCALATION_MS} ms (+ ${MARGIN_MS} ms margin)`);
    assert.ok(took >= c.destroyTimeoutMs - 100, `the jobs in flight were given destroy_timeout (${took} ms)`);
    // nothing acked, nothing lost: every message is in the queue again
    const acked = (await admin.drain(`${q}-echo`)).map((m) => m.n ?? '');
    const queued = (await admin.drain(q)).map((m) => m.id);
    const count = tally(ids, acked, [], queued);
    say(describeTally(`${t.label}, ${c.name}`, count));
    assert.equal(count.lost, 0, `lost: ${count.lostIds.join(' ')}`);
    assert.equal(count.stillQueued, ids.length, 'every message is back in the queue');
    assert.equal(count.acked, 0);
  } finally {
    cli.kill();
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
