// The shared driver conformance suite run on the nats driver against the nats-server in NATS_URLS
// (JetStream; 2.9 on the test machine: delays through the delay stream), and against a private nats-server
// 2.12+ (scripts/fetch-nats-server.sh; delays through the server's message scheduling). Each pipeline gets
// its own stream; ack_wait is 2s so a message whose delivery went stale on a cut comes back within the
// suite's limits. JetStream has no dead-lettering of its own: reject(false) terminates the message
// (capabilities().nativeDeadLetter is false). The target: conformance-targets.ts.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerUrls, runConformance } from './conformance.js';
import { natsTarget } from './conformance-targets.js';
import { PrivateNats, latestNatsServer } from '../helpers/nats.js';

const urls = brokerUrls('NATS_URLS');
if (urls === undefined) {
  test('nats conformance', { skip: 'NATS_URLS is not set: run eval "$(/work/shared/brokers/up)"' }, () => undefined);
} else {
  for (const url of urls) runConformance(`nats on ${url.replace(/\/\/[^@]*@/, '//')}`, natsTarget({ url }));
}

const latest = latestNatsServer();
if (latest.missing !== undefined) {
  // under CI=true the binary is part of the setup (.ci/run fetches it): its absence fails, never skips
  if (process.env['CI'] === 'true') test('nats conformance on nats-server 2.12+', () => assert.fail(`${latest.missing} (CI=true)`));
  else test('nats conformance on nats-server 2.12+', { skip: latest.missing }, () => undefined);
} else {
  // started by the first case that needs it, removed (with its data folder) after the last
  let server: Promise<PrivateNats> | undefined;
  after(async () => {
    if (server !== undefined) await (await server).destroy();
  });
  runConformance(`nats on a private nats-server ${latest.version} (message scheduling)`, async (opts) => {
    const { url } = await (server ??= PrivateNats.start(latest.bin));
    return natsTarget({ url })(opts);
  });
}
