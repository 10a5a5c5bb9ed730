// The broker stopped and started for real (issue 4 §5): RabbitMQ 4.0 only, through
// `SERVERS=rabbitmq4 scripts/test-servers.sh stop` (which leaves RabbitMQ 3 alone) and start. Gated behind
// JOBRUNNER_FAULTS_BROKER_RESTART=1 because it breaks every other test using RabbitMQ 4.0 while it runs;
// the default fault run uses the TCP proxy's down() for the same case. Counts: lost 0, duplicates bounded.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, faultTargets, sleep, tally, within } from '../helpers/faults.js';

const gated = process.env['JOBRUNNER_FAULTS_BROKER_RESTART'] === '1' ? false : 'set JOBRUNNER_FAULTS_BROKER_RESTART=1 (stops the shared RabbitMQ 4.0)';
const { targets, skip } = gated ? { targets: [], skip: gated } : await faultTargets();
const SERVERS = new URL('../../scripts/test-servers.sh', import.meta.url).pathname;
const only4 = { ...process.env, SERVERS: 'rabbitmq4' };

if (gated) test('broker stop and start (RabbitMQ 4.0)', { skip: gated }, () => undefined);

for (const t of targets.filter((x) => x.major >= 4)) {
  describe(`broker stop and start: ${t.label}`, { skip, concurrency: false }, () => {
    test('RabbitMQ 4.0 stopped mid-stream and started again: the daemon reconnects, nothing lost', { timeout: 180_000 }, async (tc) => {
      const admin = await Admin.open(t.url);
      const q = Admin.prefix('broker-restart');
      admin.track(q, `${q}-echo`);
      await admin.queue(q);
      await admin.queue(`${q}-echo`);
      const acked: string[] = [];
      let reader: Admin | undefined;
      const d = await startDaemon(
        daemonYaml({
          target: t,
          pipelines: [
            { name: 'work', queue: q, retry: '{ max_attempts: 5, backoff: { initial: 100ms } }', config: 'redial_timeout: 120s' },
            { name: 'echo', queue: `${q}-echo`, consume: false },
          ],
        }),
        { level: 'info' },
      );
      try {
        await waitFor('ready', () => d.daemon.readiness().ok, 20_000);
        const ids = Array.from({ length: 100 }, () => randomUUID());
        await admin.publish(q, ids.map((id) => ({ id, payload: { action: 'sleep', ms: 50, then: 'echo', n: id } })));
        await waitFor('some done', async () => (await admin.count(`${q}-echo`)) >= 20, 20_000);
        for (const m of await admin.drain(`${q}-echo`)) acked.push(m.n ?? '');
        execFileSync(SERVERS, ['stop'], { stdio: 'ignore', timeout: 60_000, env: only4 });
        await waitFor('the daemon notices', () => d.daemon.health().pipelines['work']?.connected === false, 30_000);
        await sleep(2000);
        execFileSync(SERVERS, { stdio: 'ignore', timeout: 120_000, env: only4 });
        await waitFor('reconnected', () => d.daemon.health().pipelines['work']?.connected === true, 60_000);
        reader = await Admin.open(t.url);
        const r = reader;
        await waitFor(
          'every job acked',
          async () => {
            for (const m of await r.drain(`${q}-echo`)) acked.push(m.n ?? '');
            return new Set(acked).size >= ids.length && (await r.count(q)) === 0;
          },
          60_000,
          200,
        );
        await within(d.stop(), 20_000, 'daemon stop');
        for (const m of await r.drain(`${q}-echo`)) acked.push(m.n ?? '');
        const c = tally(ids, acked, [], (await r.drain(q)).map((m) => m.id));
        tc.diagnostic(describeTally('broker stop/start', c));
        assert.equal(c.lost, 0);
        assert.ok(c.duplicates <= 10, 'bounded by prefetch');
      } finally {
        await d.stop();
        await admin.cleanup();
        if (reader) {
          reader.track(q, `${q}-echo`);
          await reader.cleanup();
        }
      }
    });
  });
}
