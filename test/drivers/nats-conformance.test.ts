// The shared driver conformance suite run on the nats driver against the nats-server in NATS_URLS
// (JetStream; 2.9 on the test machine). Each pipeline gets its own stream; ack_wait is 2s so a message
// whose delivery went stale on a cut comes back within the suite's limits. JetStream has no dead-lettering
// of its own: reject(false) terminates the message (capabilities().nativeDeadLetter is false).
// The target: conformance-targets.ts.

import { test } from 'node:test';
import { brokerUrls, runConformance } from './conformance.js';
import { natsTarget } from './conformance-targets.js';

const urls = brokerUrls('NATS_URLS');
if (urls === undefined) {
  test('nats conformance', { skip: 'NATS_URLS is not set: run eval "$(/work/shared/brokers/up)"' }, () => undefined);
} else {
  for (const url of urls) runConformance(`nats on ${url.replace(/\/\/[^@]*@/, '//')}`, natsTarget({ url }));
}
