// TLS, really connected: amqp091 and amqp1 over amqps:// against private RabbitMQ 3.10 and 4.0 nodes with
// TLS listeners (one without and one with fail_if_no_peer_cert), certificates from a throwaway CA made by
// openssl. Jobs consumed, follow-ups and an HTTP push published over TLS, with tls.root_ca, with a client
// certificate, with insecure_skip_verify (and its warning); a reconnect over TLS after the node restarts.
// And each failure (wrong CA, missing client certificate, expired certificate, certificate for another
// host) gives one error line naming the cause, the same reason in /pipelines and /health (503 once
// redial_timeout has passed), and the daemon keeps retrying. The expired and wrong-host certificates are
// served by a Node.js TLS listener: the handshake fails before any AMQP, on the client's side.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { httpJson, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { Admin, daemonYaml, describeTally, tally, within } from '../helpers/faults.js';
import { RabbitNode, privateNodesSkip, type RabbitVersion } from '../helpers/rabbit-node.js';
import { makeCerts, type Certs } from '../helpers/tls-certs.js';
import { docTlsExamples, expectTlsFailure, localTls, type TlsKeys } from '../helpers/tls-checks.js';

const skip = privateNodesSkip(3, 4);
const T = { timeout: 90_000 };
type Driver = 'amqp091' | 'amqp1';

function tlsFlow(t: TlsKeys): string {
  return `tls: ${JSON.stringify(t)}`;
}

interface Ctx {
  d: TestDaemon;
  admin: Admin;
  q: string;
  acked(): Promise<string[]>;
  /** a new admin connection (after a node restart) */
  reopen(): Promise<void>;
}

/** the one failure, on a daemon of `driver` connecting to `addr` with `tls` */
function expectFailure(driver: Driver, addr: string, tls: TlsKeys, cause: RegExp): Promise<void> {
  const yaml = daemonYaml({
    target: { driver, url: addr },
    connection: tlsFlow(tls),
    pipelines: [{ name: 'work', queue: Admin.prefix('tls-fail'), config: 'redial_timeout: 2s' }],
  });
  return expectTlsFailure(yaml, cause);
}

/** A daemon on `addr` (amqps) consuming q and pushing follow-ups to q-echo, both queues on `plain` (amqp://). */
async function withTlsDaemon(
  driver: Driver,
  plainUrl: string,
  addr: string,
  tls: TlsKeys,
  body: (c: Ctx) => Promise<void>,
  pipelineConfig = '',
): Promise<void> {
  const admin = await Admin.open(plainUrl);
  const q = Admin.prefix(`tls-${driver}`);
  await admin.queue(q);
  await admin.queue(`${q}-echo`);
  const acked: string[] = [];
  const d = await startDaemon(
    daemonYaml({
      target: { driver, url: addr },
      connection: tlsFlow(tls),
      pipelines: [
        { name: 'work', queue: q, ...(pipelineConfig ? { config: pipelineConfig } : {}) },
        { name: 'echo', queue: `${q}-echo`, consume: false },
      ],
    }),
    { level: 'debug' },
  );
  const ctx: Ctx = {
    d,
    admin,
    q,
    acked: async () => {
      for (const m of await ctx.admin.drain(`${q}-echo`).catch(() => [])) acked.push(m.n ?? '');
      return acked;
    },
    reopen: async () => {
      await ctx.admin.close();
      ctx.admin = await Admin.open(plainUrl);
      ctx.admin.track(q, `${q}-echo`);
    },
  };
  try {
    await body(ctx);
  } finally {
    await within(d.stop(), 30_000, 'daemon stop');
    await ctx.admin.cleanup();
  }
}

async function jobsOverTls(c: Ctx, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => randomUUID());
  await c.admin.publish(c.q, ids.map((id) => ({ id, payload: { action: 'echo', n: id } })));
  // and one pushed through the daemon's HTTP API: published over TLS
  const pushed = randomUUID();
  const r = await httpJson('POST', `${c.d.url}/pipelines/work/jobs`, { job: 'Test', id: pushed, payload: { action: 'echo', n: pushed } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  ids.push(pushed);
  await waitFor('every job acked over TLS', async () => {
    const got = new Set(await c.acked());
    return ids.every((id) => got.has(id));
  }, 30_000, 100);
  return ids;
}

let certs: Certs;
before(() => {
  certs = makeCerts();
});
after(() => certs?.remove());

for (const version of [3, 4] as RabbitVersion[]) {
  describe(`TLS on a private RabbitMQ ${version === 3 ? '3.10' : '4.0'} node`, { skip, concurrency: false }, () => {
    let tlsNode: RabbitNode;
    let mtlsNode: RabbitNode;
    before(async () => {
      tlsNode = await RabbitNode.startTls(version, certs);
      mtlsNode = await RabbitNode.startTls(version, certs, { requireClientCert: true });
    }, { timeout: 240_000 });
    after(async () => {
      await tlsNode?.remove();
      await mtlsNode?.remove();
    });

    for (const driver of ['amqp091', 'amqp1'] as const) {
      test(`${driver} over amqps:// with tls.root_ca: jobs, follow-ups and a push over TLS; reconnects over TLS after the node restarts`, T, async (tc) => {
        await withTlsDaemon(driver, tlsNode.url, tlsNode.tlsUrl(), { root_ca: certs.ca }, async (c) => {
          await waitFor('connected over TLS', () => c.d.daemon.readiness().ok, 30_000);
          const first = await jobsOverTls(c, 10);
          await tlsNode.stop();
          await waitFor('the daemon notices', () => c.d.daemon.health().pipelines['work']?.connected === false, 30_000);
          await tlsNode.restart();
          await c.reopen();
          await waitFor('reconnected over TLS', () => c.d.daemon.readiness().ok, 60_000);
          const second = await jobsOverTls(c, 10);
          const t = tally([...first, ...second], await c.acked());
          tc.diagnostic(describeTally(`${driver} on ${version} over TLS, node restarted`, t));
          assert.equal(t.lost, 0);
        });
      });

      test(`${driver} with a client certificate where the node requires one`, T, async () => {
        await withTlsDaemon(driver, mtlsNode.url, mtlsNode.tlsUrl(), { root_ca: certs.ca, cert: certs.client.cert, key: certs.client.key }, async (c) => {
          await waitFor('connected with a client certificate', () => c.d.daemon.readiness().ok, 30_000);
          await jobsOverTls(c, 10);
        });
      });

      test(`${driver} with insecure_skip_verify: connects without root_ca and logs a warning`, T, async () => {
        await withTlsDaemon(driver, tlsNode.url, tlsNode.tlsUrl('127.0.0.1'), { insecure_skip_verify: true }, async (c) => {
          await waitFor('connected unverified', () => c.d.daemon.readiness().ok, 30_000);
          await jobsOverTls(c, 5);
          const warn = c.d.logs.filter((l) => l.level === 'warn' && /insecure_skip_verify/.test(l.msg));
          assert.equal(warn.length, 1, 'one warning');
          assert.match(warn[0]!.msg, /not verified/);
        });
      });

      test(`${driver}: the TLS examples of docs/configuration.md and docs/drivers/${driver}${driver === 'amqp1' ? `.md and amqp1-rabbitmq${version}` : ''}.md, as written`, T, async () => {
        const section = driver === 'amqp091' ? 'amqp' : 'amqp1';
        let ran = 0;
        const pages = driver === 'amqp1' ? [`docs/drivers/${driver}.md`, `docs/drivers/amqp1-rabbitmq${version}.md`] : [`docs/drivers/${driver}.md`];
        for (const file of ['docs/configuration.md', ...pages]) {
          const examples = docTlsExamples(file).filter((e) => e[section] !== undefined);
          assert.ok(examples.length >= 1, `${file} has a TLS example for ${section}`);
          for (const e of examples) {
            const conf = e[section]!;
            const addr = conf.addr.replace('localhost:5671', `localhost:${mtlsNode.tlsPort}`);
            const tls = localTls(conf.tls, certs.dir);
            await withTlsDaemon(driver, mtlsNode.url, addr, tls, async (c) => {
              await waitFor(`${file}'s example connects`, () => c.d.daemon.readiness().ok, 30_000);
              await jobsOverTls(c, 3);
            });
            ran++;
          }
        }
        assert.ok(ran >= 1 + pages.length);
      });

      test(`${driver}: the wrong CA is named, in /pipelines and /health, and retried`, T, async () => {
        await expectFailure(driver, tlsNode.tlsUrl(), { root_ca: certs.otherCa }, /TLS: the broker's certificate is not signed by a CA in tls\.root_ca/);
      });

      test(`${driver}: a missing client certificate is named, in /pipelines and /health, and retried`, T, async () => {
        await expectFailure(driver, mtlsNode.tlsUrl(), { root_ca: certs.ca }, /TLS: the broker requires a client certificate/);
      });
    }
  });
}

describe('TLS certificates the client must refuse (a Node.js TLS listener)', () => {
  let expired: TlsServer;
  let wrongHost: TlsServer;
  const listen = (pair: { cert: string; key: string }): Promise<TlsServer> =>
    new Promise((resolve) => {
      const s = createTlsServer({ cert: readFileSync(pair.cert), key: readFileSync(pair.key) }, (sock) => sock.destroy());
      s.on('tlsClientError', () => undefined);
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
  const port = (s: TlsServer): number => (s.address() as { port: number }).port;
  before(async () => {
    expired = await listen(certs.expired);
    wrongHost = await listen(certs.wrongHost);
  });
  after(() => {
    expired?.close();
    wrongHost?.close();
  });
  for (const driver of ['amqp091', 'amqp1'] as const) {
    test(`${driver}: an expired certificate is named`, T, async () => {
      await expectFailure(driver, `amqps://guest:guest@localhost:${port(expired)}`, { root_ca: certs.ca }, /TLS: the broker's certificate has expired/);
    });
    test(`${driver}: a certificate for another host is named`, T, async () => {
      await expectFailure(driver, `amqps://guest:guest@localhost:${port(wrongHost)}`, { root_ca: certs.ca }, /TLS: the broker's certificate is not for localhost/);
    });
  }
  for (const [driver, section] of [['amqp091', 'amqp'], ['amqp1', 'amqp1']] as const) {
    test(`${driver}: a tls file that cannot be read is named (the key and the path), and retried`, T, async () => {
      await expectFailure(driver, `amqps://guest:guest@localhost:${port(expired)}`, { root_ca: `${certs.dir}/missing-ca.pem` }, new RegExp(`cannot read ${section}\\.tls\\.root_ca \\(.*missing-ca\\.pem\\): ENOENT`));
    });
  }
});
