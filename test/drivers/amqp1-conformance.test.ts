// The shared driver conformance suite run on the amqp1 driver against RabbitMQ 3.10 (AMQP 1.0 plugin,
// :5672) and RabbitMQ 4.0 (native AMQP 1.0, :5673), one run per URL in AMQP1_URLS.
// Queues (and the dead-letter arguments) are created over AMQP 0-9-1 in test setup: AMQP 1.0 cannot
// declare on 3.x. On 3.x the delay queue is created the same way (see docs/drivers/amqp1-rabbitmq3.md).
// The target: conformance-targets.ts.

import { test } from 'node:test';
import { brokerUrls, runConformance } from './conformance.js';
import { amqp1Target } from './conformance-targets.js';

const urls = brokerUrls('AMQP1_URLS');
if (urls === undefined) {
  test('amqp1 conformance', { skip: 'AMQP1_URLS is not set: run eval "$(sudo scripts/test-servers.sh)"' }, () => undefined);
} else {
  for (const url of urls) runConformance(`amqp1 on ${url.replace(/\/\/[^@]*@/, '//')}`, amqp1Target({ url }));
}
