// Scaling out, proven: a 3-node RabbitMQ 4.0 cluster on this machine (private nodes, their own ports),
// quorum queues, three daemons consuming one pipeline (each with the three nodes in `addr`, each starting on
// a different node). The node holding the queue's leader is stopped under load and started again: lost 0,
// duplicates at most what was in flight (each daemon's prefetch), every daemon recovers by itself (each
// takes jobs after the restart), and each daemon's share is printed. amqp091 and amqp1.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, readRecord, tally, within } from '../helpers/faults.js';
import { RabbitCluster, privateNodesSkip, type RabbitNode } from '../helpers/rabbit-node.js';

const skip = privateNodesSkip(4);
const PREFETCH = 10;
const DAEMONS = 3;
const QUORUM = { 'x-queue-type': 'quorum' };

/** the node that holds the quorum queue's leader */
async function leaderOf(cluster: RabbitCluster, queue: string, via: RabbitNode = cluster.nodes[0]!): Promise<RabbitNode> {
  const out = await via.ctl(['list_queues', 'name', 'leader', '--formatter', 'json']);
  const row = (JSON.parse(out) as Array<{ name: string; leader: string }>).find((r) => r.name === queue);
  const node = row ? cluster.node(row.leader) : undefined;
  if (!node) throw new Error(`no leader for ${queue} in ${out}`);
  return node;
}

describe('scaling out: three daemons on a 3-node RabbitMQ 4.0 cluster', { skip, concurrency: false }, () => {
  let cluster: RabbitCluster;
  before(async () => {
    cluster = await RabbitCluster.start(4, 3);
  }, { timeout: 300_000 });
  after(async () => {
    await cluster?.remove();
  });

  for (const driver of ['amqp091', 'amqp1'] as const) {
    test(`${driver}: the queue leader's node stopped under load and started again: lost 0, every daemon recovers`, { timeout: 240_000 }, async (tc) => {
      const q = Admin.prefix(`scale-${driver}`);
      const dir = mkdtempSync(join(tmpdir(), 'jobrunner-scale-'));
      let admin = await Admin.open(cluster.nodes[0]!.url);
      await admin.queue(q, QUORUM);
      await admin.queue(`${q}-echo`, QUORUM);
      const leader = await leaderOf(cluster, q);
      // the admin works through a node that stays up
      const other = cluster.nodes.find((n) => n !== leader)!;
      await admin.close();
      admin = await Admin.open(other.url);
      admin.track(q, `${q}-echo`);
      const acked: string[] = [];
      const collected = async (): Promise<number> => {
        for (const m of await admin.drain(`${q}-echo`)) acked.push(m.n ?? '');
        return new Set(acked).size;
      };
      const daemons: TestDaemon[] = [];
      const records = Array.from({ length: DAEMONS }, (_, i) => join(dir, `record-${i}`));
      const urls = cluster.urls;
      try {
        for (let i = 0; i < DAEMONS; i++) {
          const addr = [...urls.slice(i), ...urls.slice(0, i)];
          const quorum = driver === 'amqp091' ? ', queue_headers: { x-queue-type: quorum }' : '';
          daemons.push(
            await startDaemon(
              daemonYaml({
                target: { driver, url: addr[0]! },
                addr,
                env: { SCRIPTED_RECORD: records[i]! },
                pool: '{ num_workers: 2, max_concurrency: 1, destroy_timeout: 5s, allocate_timeout: 30s }',
                pipelines: [
                  { name: 'work', queue: q, config: `redial_timeout: 120s${quorum}` },
                  { name: 'echo', queue: `${q}-echo`, consume: false, config: `redial_timeout: 120s${quorum}` },
                ],
              }),
              { level: 'info' },
            ),
          );
        }
        for (const d of daemons) await waitFor('every daemon ready', () => d.daemon.readiness().ok, 60_000);
        const publish = async (n: number): Promise<string[]> => {
          const ids = Array.from({ length: n }, () => randomUUID());
          await admin.publish(q, ids.map((id) => ({ id, payload: { action: 'sleep', ms: 40, then: 'echo', n: id } })));
          return ids;
        };
        const first = await publish(300);
        await waitFor('60 jobs done', async () => (await collected()) >= 60, 60_000, 100);
        const t0 = Date.now();
        await leader.stop();
        tc.diagnostic(`stopped ${leader.name} (the leader of ${q}) in ${Date.now() - t0} ms`);
        await waitFor('the queue has a new leader', async () => (await leaderOf(cluster, q, other).catch(() => leader)) !== leader, 60_000, 500);
        await new Promise((r) => setTimeout(r, 2000));
        await leader.restart();
        tc.diagnostic(`${leader.name} started again`);
        await waitFor('every job of the first batch done', async () => {
          await collected();
          const got = new Set(acked);
          return first.every((id) => got.has(id));
        }, 120_000, 200);
        for (const d of daemons) await waitFor('every daemon connected', () => d.daemon.health().pipelines['work']?.connected === true, 60_000);
        // every daemon recovered: each takes jobs of a batch published after the restart
        const before = records.map((r) => readRecord(r).length);
        const second = await publish(150);
        await waitFor('every job of the second batch done', async () => {
          await collected();
          const got = new Set(acked);
          return second.every((id) => got.has(id)) && (await admin.count(q)) === 0;
        }, 120_000, 200);
        const all = [...first, ...second];
        const c = tally(all, acked, [], (await admin.drain(q)).map((m) => m.id));
        const shares = records.map((r, i) => `daemon ${i + 1}: ${readRecord(r).length} deliveries (${readRecord(r).length - before[i]!} after the restart)`);
        tc.diagnostic(describeTally(`${driver}, 3 daemons, leader node stopped and started`, c));
        tc.diagnostic(shares.join('; '));
        assert.equal(c.lost, 0, `lost ids: ${c.lostIds.join(' ')}`);
        assert.ok(c.duplicates <= DAEMONS * PREFETCH, `duplicates ${c.duplicates} must be at most what was in flight (${DAEMONS} daemons x prefetch ${PREFETCH})`);
        records.forEach((r, i) => assert.ok(readRecord(r).length - before[i]! > 0, `daemon ${i + 1} took jobs after the restart`));
      } finally {
        for (const d of daemons) await within(d.stop(), 30_000, 'daemon stop').catch(() => undefined);
        await admin.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
