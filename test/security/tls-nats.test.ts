// TLS, really connected, on the nats driver: the daemon against private nats-servers with TLS (one with
// --tls, one with --tlsverify: a client certificate required), certificates from a throwaway CA made by
// openssl (test/helpers/tls-certs.ts). Jobs published from the side and a push through the daemon's HTTP
// API run over TLS, with tls.root_ca, with a client certificate, with insecure_skip_verify (and its
// warning); a reconnect over TLS after the server restarts; the TLS examples of docs/configuration.md and
// docs/drivers/nats.md as written. Each failure (wrong CA, missing client certificate, a tls file that
// cannot be read, tls:// to a server without TLS) gives one error line naming the cause, the same reason in /pipelines and /health (503 once
// redial_timeout has passed), and the daemon keeps retrying. Every test counts ids.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpJson, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { freePort, readRecord, within } from '../helpers/faults.js';
import { NATS_SERVER, NatsAdmin, PrivateNats, scriptedNatsYaml, type NatsClientTls } from '../helpers/nats.js';
import { makeCerts, type Certs } from '../helpers/tls-certs.js';
import { docTlsExamples, expectTlsFailure, localTls, type TlsKeys } from '../helpers/tls-checks.js';

const T = { timeout: 120_000 };
const missing = existsSync(NATS_SERVER) ? false : `${NATS_SERVER} is missing (set NATS_SERVER_BIN)`;
if (missing && process.env['CI'] === 'true') throw new Error(`${missing} (CI=true)`);

let certs: Certs;
let dir: string;
let plain: PrivateNats;
let tlsServer: PrivateNats;
let mtlsServer: PrivateNats;

function natsYaml(addr: string | string[], tls: TlsKeys | undefined, pipeline: { stream: string; subject: string }, record: string): string {
  return scriptedNatsYaml({ addr, record, tls, level: 'debug', config: `stream: ${pipeline.stream}, subject: ${pipeline.subject}, ack_wait: 5s, prefetch: 10, redial_timeout: 2s` });
}

function names(): { stream: string; subject: string } {
  const id = randomUUID().slice(0, 8);
  return { stream: `JRTLS_${id}`, subject: `jrtls.${id}` };
}

interface Ctx {
  d: TestDaemon;
  admin: NatsAdmin;
  stream: string;
  subject: string;
  record: string;
}

/** A daemon on `server` with these tls keys, consuming pipeline `work`; the side client reaches the server with adminTls. */
async function withNatsDaemon(server: PrivateNats, addr: string, tls: TlsKeys | undefined, adminTls: NatsClientTls, body: (c: Ctx) => Promise<void>): Promise<void> {
  const { stream, subject } = names();
  const record = join(dir, `record-${stream}`);
  const admin = new NatsAdmin(server.url, adminTls);
  admin.track(stream);
  const d = await startDaemon(natsYaml(addr, tls, { stream, subject }, record), { level: 'debug' });
  try {
    await body({ d, admin, stream, subject, record });
  } finally {
    await within(d.stop(), 30_000, 'daemon stop');
    await admin.cleanup();
  }
}

/** n jobs published from the side and one pushed through the daemon (published over TLS), each run by a worker, the stream settled */
async function jobsOverTls(c: Ctx, n: number): Promise<string[]> {
  const ids = await c.admin.publishJobs(c.subject, Array.from({ length: n }, () => ({ action: 'ack' })));
  const pushed = randomUUID();
  const r = await httpJson('POST', `${c.d.url}/pipelines/work/jobs`, { job: 'Test', id: pushed, payload: { action: 'ack' } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  ids.push(pushed);
  await waitFor('every job run over TLS', () => {
    const seen = new Set(readRecord(c.record).map((x) => x.id));
    return ids.every((id) => seen.has(id));
  }, 60_000, 100);
  await waitFor('the stream settled', async () => (await c.admin.unsettled(c.stream, 'jobrunner-work')) === 0, 30_000, 200);
  return ids;
}

const clientOnly = (): NatsClientTls => ({ caFile: certs.ca });
const withCert = (): NatsClientTls => ({ caFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key });

describe('nats over TLS against private nats-servers', { skip: missing, concurrency: false }, () => {
  before(async () => {
    certs = makeCerts();
    dir = mkdtempSync(join(tmpdir(), 'jobrunner-tls-nats-'));
    const server = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca };
    plain = await PrivateNats.start();
    tlsServer = await PrivateNats.start(NATS_SERVER, server);
    mtlsServer = await PrivateNats.start(NATS_SERVER, { ...server, verify: true });
  });
  after(async () => {
    await plain?.destroy();
    await tlsServer?.destroy();
    await mtlsServer?.destroy();
    certs?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('with tls.root_ca: jobs and a push over TLS; after the server restarts, reconnected over TLS, 0 lost', T, async (tc) => {
    await withNatsDaemon(tlsServer, tlsServer.url, { root_ca: certs.ca }, clientOnly(), async (c) => {
      await waitFor('connected over TLS', () => c.d.daemon.readiness().ok, 30_000);
      const first = await jobsOverTls(c, 20);
      await tlsServer.stop();
      await waitFor('the daemon notices', () => c.d.daemon.health().pipelines['work']?.connected === false, 30_000);
      await tlsServer.start();
      await waitFor('reconnected over TLS', () => c.d.daemon.readiness().ok, 60_000);
      const second = await jobsOverTls(c, 20);
      const ids = [...first, ...second];
      const rec = readRecord(c.record);
      const seen = new Set(rec.map((r) => r.id));
      const lost = ids.filter((id) => !seen.has(id));
      tc.diagnostic(`nats over TLS, server restarted: published ${ids.length}, run ${seen.size}, deliveries ${rec.length} (again: ${rec.length - seen.size}), lost ${lost.length}`);
      assert.deepEqual(lost, []);
    });
  });

  test('with a client certificate where the server requires one (--tlsverify)', T, async () => {
    await withNatsDaemon(mtlsServer, mtlsServer.url, { root_ca: certs.ca, cert: certs.client.cert, key: certs.client.key }, withCert(), async (c) => {
      await waitFor('connected with a client certificate', () => c.d.daemon.readiness().ok, 30_000);
      await jobsOverTls(c, 10);
    });
  });

  test('with insecure_skip_verify: connects without root_ca and logs a warning', T, async () => {
    await withNatsDaemon(tlsServer, tlsServer.url, { insecure_skip_verify: true }, clientOnly(), async (c) => {
      await waitFor('connected unverified', () => c.d.daemon.readiness().ok, 30_000);
      await jobsOverTls(c, 5);
      const warn = c.d.logs.filter((l) => l.level === 'warn' && /insecure_skip_verify/.test(l.msg));
      assert.equal(warn.length, 1, 'one warning');
      assert.match(warn[0]!.msg, /^nats\.tls\.insecure_skip_verify is true: .*not verified/);
    });
  });

  test('the TLS examples of docs/configuration.md and docs/drivers/nats.md, as written', T, async () => {
    let ran = 0;
    for (const file of ['docs/configuration.md', 'docs/drivers/nats.md']) {
      const examples = docTlsExamples(file).filter((e) => e['nats'] !== undefined);
      assert.ok(examples.length >= 1, `${file} has a TLS example for nats`);
      for (const e of examples) {
        const conf = e['nats']!;
        const addr = conf.addr.replace('localhost:4222', `localhost:${mtlsServer.port}`);
        assert.notEqual(addr, conf.addr, `${file}: the example's addr is localhost:4222`);
        await withNatsDaemon(mtlsServer, addr, localTls(conf.tls, certs.dir), withCert(), async (c) => {
          await waitFor(`${file}'s example connects`, () => c.d.daemon.readiness().ok, 30_000);
          await jobsOverTls(c, 3);
        });
        ran++;
      }
    }
    assert.ok(ran >= 2);
  });

  test('the wrong CA is named, in /pipelines and /health, and retried', T, async () => {
    await expectTlsFailure(natsYaml(tlsServer.url, { root_ca: certs.otherCa }, names(), join(dir, 'unused')), /TLS: the broker's certificate is not signed by a CA in tls\.root_ca/);
  });

  test('a missing client certificate is named, in /pipelines and /health, and retried', T, async () => {
    await expectTlsFailure(natsYaml(mtlsServer.url, { root_ca: certs.ca }, names(), join(dir, 'unused')), /TLS: the broker requires a client certificate \(set tls\.cert and tls\.key\)/);
  });

  test('with several servers in addr, the one that refuses a missing client certificate is named, whichever failed last', T, async () => {
    // the client reports one error for all the servers it tried: a refused connection (the closed port)
    // or a timeout (the refused certificate); probing each URL finds the cause, and where
    const closed = `nats://127.0.0.1:${await freePort()}`;
    const port = new URL(mtlsServer.url).port;
    await expectTlsFailure(
      natsYaml([closed, mtlsServer.url], { root_ca: certs.ca }, names(), join(dir, 'unused')),
      new RegExp(`TLS: the broker requires a client certificate \\(set tls\\.cert and tls\\.key\\).* \\(at nats://127\\.0\\.0\\.1:${port}\\)`),
    );
  });

  test('a tls file that cannot be read is named (the key and the path), in /pipelines and /health, and retried', T, async () => {
    await expectTlsFailure(natsYaml(tlsServer.url, { root_ca: join(dir, 'missing-ca.pem') }, names(), join(dir, 'unused')), /cannot read nats\.tls\.root_ca \(.*missing-ca\.pem\): ENOENT/);
  });

  test('tls:// to a server without TLS is named, in /pipelines and /health, and retried', T, async () => {
    await expectTlsFailure(natsYaml(plain.url.replace('nats://', 'tls://'), undefined, names(), join(dir, 'unused')), /TLS: the server does not offer TLS/);
  });
});
