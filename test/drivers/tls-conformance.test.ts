// The conformance suite's basic cases (publish, consume, ack, reject, requeue, dead letter, delay,
// headers, cancel) over TLS: amqp091 and amqp1 over amqps:// against private RabbitMQ 3.10 and 4.0 nodes
// whose TLS listener requires a client certificate (tls.root_ca, tls.cert and tls.key all in use),
// certificates from a throwaway CA (test/helpers/tls-certs.ts). The same targets as the plain runs
// (conformance-targets.ts), with a TLS connection config; set up and cleaned up over the nodes' plain port.

import { after, before, describe } from 'node:test';
import type { TlsConfig } from '../../src/config/types.js';
import { RabbitNode, privateNodesSkip, type RabbitVersion } from '../helpers/rabbit-node.js';
import { makeCerts, type Certs } from '../helpers/tls-certs.js';
import { runConformance, type ConformanceFactory } from './conformance.js';
import { amqp091Target, amqp1Target, type TargetOptions } from './conformance-targets.js';

const skip = privateNodesSkip(3, 4);

let certs: Certs | undefined;
before(() => {
  certs = makeCerts();
});
after(() => certs?.remove());

function clientTls(c: Certs): TlsConfig {
  return { rootCa: c.ca, cert: c.client.cert, key: c.client.key, insecureSkipVerify: false };
}

/** a factory that builds its target when a case runs (the node exists only from before() on) */
function later(target: (o: TargetOptions) => ConformanceFactory, options: () => TargetOptions): ConformanceFactory {
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
