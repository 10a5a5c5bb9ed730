// The driver conformance suite against the amqp091 driver, once per broker in AMQP091_URLS
// (RabbitMQ 3.10 and 4.0). Skips without brokers unless CI=true. The target: conformance-targets.ts.

import { test } from 'node:test';
import { brokerUrls, runConformance } from './conformance.js';
import { amqp091Target } from './conformance-targets.js';

const urls = brokerUrls('AMQP091_URLS');
if (urls === undefined) {
  test('amqp091 conformance', { skip: 'AMQP091_URLS is not set (run: eval "$(sudo scripts/test-servers.sh)")' }, () => undefined);
} else {
  for (const url of urls) runConformance(`amqp091 ${new URL(url).host}`, amqp091Target({ url }));
}
