// The conformance suite's basic cases (publish, consume, ack, reject, requeue, dead letter, delay,
// headers, cancel) over TLS: amqp091 and amqp1 over amqps:// against private RabbitMQ 3.10 and 4.0 nodes,
// and nats against a private nats-server, each requiring a client certificate (tls.root_ca, tls.cert and
// tls.key all in use), certificates from a throwaway CA (test/helpers/tls-certs.ts). The same targets as
// the plain runs (conformance-targets.ts), with a TLS connection config; the RabbitMQ side set up and
// cleaned up over the nodes' plain port, the nats side over TLS.

import { existsSync } from 'node:fs';
import { after, before, describe } from 'node:test';
import type { TlsConfig } from '../../src/config/types.js';
import { NATS_SERVER, PrivateNats } from '../helpers/nats.js';
import { RabbitNode, privateNodesSkip, type RabbitVersion } from '../helpers/rabbit-node.js';
import { makeCerts, type Certs } from '../helpers/tls-certs.js';
import { runConformance, type ConformanceFactory } from './conformance.js';
import { amqp091Target, amqp1Target, natsTarget, type TargetOptions } from './conformance-targets.js';

const skip = privateNodesSkip(3, 4);
const natsMissing = existsSync(NATS_SERVER) ? false : `${NATS_SERVER} is missing (set NATS_SERVER_BIN)`;
if (natsMissing && process.env['CI'] === 'true') throw new Error(`${natsMissing} (CI=true)`);

let certs: Certs | undefined;
before(() => {
  certs = makeCerts();
});
after(() => certs?.remove());

function clientTls(c: Certs): TlsConfig {
  return { rootCa: c.ca, cert: c.client.cert, key: c.client.key, insecureSkipVerify: false };
}

/** a factory that builds its target when a case runs (the node exists only from before() on) */
function later<O extends TargetOptions>(target: (o: O) => ConformanceFactory, options: () => O): ConformanceFactory {
  return (o) => target(options())(o);
}

for (const version of [3, 4] as RabbitVersion[]) {
  const name = version === 3 ? '3.10' : '4.0';
  describe(`over TLS on a private RabbitMQ ${name} node that requires a client certificate`, { skip, concurrency: false }, () => {
    let node: RabbitNode | undefined;
    before(async () => {
      node = await RabbitNode.startTls(version, certs!, { requireClientCert: true });
    }, { timeout: 240_000 });
    after(async () => {
      await node?.remove();
    });
    const options = (): TargetOptions => ({ url: node!.tlsUrl(), adminUrl: node!.url, tls: clientTls(certs!) });
    runConformance(`amqp091 over amqps:// on RabbitMQ ${name}`, later(amqp091Target, options), { basic: true });
    runConformance(`amqp1 over amqps:// on RabbitMQ ${name}`, later(amqp1Target, options), { basic: true });
  });
}

describe('over TLS on a private nats-server that requires a client certificate (--tlsverify)', { skip: natsMissing, concurrency: false }, () => {
  let server: PrivateNats | undefined;
  before(async () => {
    server = await PrivateNats.start(NATS_SERVER, { cert: certs!.server.cert, key: certs!.server.key, ca: certs!.ca, verify: true });
  });
  after(async () => {
    await server?.destroy();
  });
  const c = (): Certs => certs!;
  runConformance(
    'nats over TLS',
    later(natsTarget, () => ({ url: server!.url, tls: clientTls(c()), adminTls: { caFile: c().ca, certFile: c().client.cert, keyFile: c().client.key } })),
    { basic: true },
  );
});
