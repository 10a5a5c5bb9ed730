// A private nats-server (own port, own data folder; the shared one on :4222 is never touched) stopped and
// started again under load: the daemon's /health answers 503 while the server is gone (after the
// pipeline's redial_timeout) and 200 once it is back, and every job published is settled, 0 lost.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { readRecord, within } from '../helpers/faults.js';
import { httpCall } from '../helpers/http.js';
import { NATS_SERVER, NatsAdmin, PrivateNats, scriptedNatsYaml } from '../helpers/nats.js';

const missing = existsSync(NATS_SERVER) ? false : `${NATS_SERVER} is missing (set NATS_SERVER_BIN)`;
if (missing && process.env['CI'] === 'true') throw new Error(`${missing} (CI=true)`);

describe('nats-server stopped and started under load', { skip: missing, concurrency: false }, () => {
  test('/health 503 during the outage and 200 after; every job settled, 0 lost', { timeout: 180_000 }, async (tc) => {
    const server = await PrivateNats.start();
    const dir = mkdtempSync(join(tmpdir(), 'jobrunner-nats-restart-'));
    const admin = new NatsAdmin(server.url);
    const record = join(dir, 'record');
    const stream = `JRR_${randomUUID().slice(0, 8)}`;
    const subject = `jrr.${stream}`;
    const d = await startDaemon(
      scriptedNatsYaml({ addr: server.url, record, config: `stream: ${stream}, subject: ${subject}, ack_wait: 3s, prefetch: 8, redial_timeout: 1s` }),
    );
    try {
      await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
      const health = async (): Promise<number> => (await httpCall('GET', `${d.url}/health`, { timeoutMs: 5000 })).status;
      assert.equal(await health(), 200);
      const ids: string[] = [];
      // publishJobs publishes again what JetStream does not answer right after the restart
      const publish = async (n: number): Promise<void> => {
        ids.push(...(await admin.publishJobs(subject, Array.from({ length: n }, () => ({ action: 'sleep', ms: 50 })))));
      };
      await publish(150);
      await waitFor('some done', () => readRecord(record).length >= 20, 30_000);
      await server.stop();
      await waitFor('/health 503 during the outage', async () => (await health()) === 503, 20_000, 100);
      assert.equal(d.daemon.health().pipelines['work']?.connected, false);
      await server.start();
      await waitFor('/health 200 after', async () => (await health()) === 200, 60_000, 100);
      // more load after the restart
      await publish(50);
      const { jsm } = await admin.conn();
      await waitFor(
        'every job settled',
        async () => {
          const i = await jsm.consumers.info(stream, 'jobrunner-work');
          return i.num_pending === 0 && i.num_ack_pending === 0 && new Set(readRecord(record).map((r) => r.id)).size >= ids.length;
        },
        90_000,
        200,
      );
      const rec = readRecord(record);
      const seen = new Set(rec.map((r) => r.id));
      const lost = ids.filter((id) => !seen.has(id));
      tc.diagnostic(`published ${ids.length}, reached a worker ${seen.size}, deliveries ${rec.length} (again: ${rec.length - seen.size}), lost ${lost.length}`);
      assert.deepEqual(lost, []);
    } finally {
      await within(d.stop(), 30_000, 'daemon stop').catch(() => undefined);
      await admin.cleanup();
      await server.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
