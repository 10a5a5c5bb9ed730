// Clusters (issue 4 §7): `addr` as a list for both drivers. A dead address first in the list costs one
// failed connect; and when the broker behind the address in use goes away (a TCP proxy refusing
// connections), the daemon moves to the next address and consumes again. Jobs are counted in and out.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, tally, within, type Target } from '../helpers/faults.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const { targets, skip } = await faultTargets();
const T = { timeout: 45_000 };

async function run(t: Target, what: string, addr: string[], body: (c: { admin: Admin; d: TestDaemon; q: string; publish(n: number): Promise<string[]>; acked(): Promise<string[]> }) => Promise<void>): Promise<void> {
  const admin = await Admin.open(t.url);
  const q = Admin.prefix(what);
  admin.track(q, `${q}-echo`);
  await admin.queue(q);
  const acked: string[] = [];
  let d: TestDaemon | undefined;
  try {
    d = await startDaemon(
      daemonYaml({
        target: t,
        addr,
        pipelines: [
          { name: 'work', queue: q, retry: '{ max_attempts: 5, backoff: { initial: 100ms } }' },
          { name: 'echo', queue: `${q}-echo`, consume: false },
        ],
      }),
      { level: 'info' },
    );
    const daemon = d;
    await waitFor('ready', () => daemon.daemon.readiness().ok, 20_000);
    await body({
      admin,
      d,
      q,
      publish: async (n) => {
        const ids = Array.from({ length: n }, () => randomUUID());
        await admin.publish(q, ids.map((id) => ({ id, payload: { action: 'sleep', ms: 20, then: 'echo', n: id } })));
        return ids;
      },
      acked: async () => {
        for (const m of await admin.drain(`${q}-echo`)) acked.push(m.n ?? '');
        return acked;
      },
    });
  } finally {
    if (d) await within(d.stop(), 20_000, 'daemon stop');
    await admin.cleanup();
  }
}

for (const t of targets) {
  describe(`cluster addr lists: ${t.label}`, { skip, concurrency: false }, () => {
    test('a dead address first in the list: the next one is used', T, async (tc) => {
      const dead = new URL(t.url);
      dead.port = '1'; // nothing listens there: connection refused
      await run(t, 'cluster-dead-first', [dead.toString(), t.url], async ({ d, publish, acked }) => {
        const ids = await publish(20);
        await waitFor('all acked', async () => new Set(await acked()).size === ids.length);
        const c = tally(ids, await acked());
        tc.diagnostic(describeTally('dead address first', c));
        assert.equal(c.lost, 0);
        assert.equal(c.duplicates, 0);
        assert.ok(d.daemon.health().ok);
      });
    });

    test('the broker behind the current address goes away: the daemon moves to the next address', T, async (tc) => {
      const target = new URL(t.url);
      const a = await startTcpProxy(target.hostname, Number(target.port));
      const b = await startTcpProxy(target.hostname, Number(target.port));
      try {
        await run(t, 'cluster-failover', [a.url(t.url), b.url(t.url)], async ({ publish, acked }) => {
          assert.equal(b.connections, 0, 'the first address is used first');
          const first = await publish(20);
          await waitFor('the first batch acked', async () => new Set(await acked()).size === first.length);
          a.down(); // node A is gone: its connections reset, new ones refused
          await waitFor('connected through B', () => b.open > 0, 20_000);
          const second = await publish(20);
          const all = [...first, ...second];
          await waitFor('all acked', async () => new Set(await acked()).size === all.length, 20_000);
          const c = tally(all, await acked());
          tc.diagnostic(describeTally('failover to the next address', c) + ` (connections A=${a.connections} B=${b.connections})`);
          assert.equal(c.lost, 0);
          assert.ok(c.duplicates <= 10, 'bounded by prefetch');
        });
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
}
