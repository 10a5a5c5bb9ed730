// The RabbitMQ delay-queue scheme both AMQP drivers share: one name and one set of arguments per delay.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { delayQueueArguments, delayQueueName } from '../../src/drivers/rabbitmq-delays.js';

test('delay queue names: jobrunner.delay.<queue>.<ms>, whole milliseconds', () => {
  assert.equal(delayQueueName('orders', 1500), 'jobrunner.delay.orders.1500');
  assert.equal(delayQueueName('orders', 1500.4), 'jobrunner.delay.orders.1500');
});

test('delay queue arguments: back through a routing exchange, else straight to the queue; x-expires after the TTL', () => {
  assert.deepEqual(delayQueueArguments({ queue: 'q', exchange: 'ex', routingKey: 'rk', routesByKey: true }, 1000), {
    'x-message-ttl': 1000,
    'x-dead-letter-exchange': 'ex',
    'x-dead-letter-routing-key': 'rk',
    'x-expires': 61_000,
  });
  // fanout / headers: not through the exchange (it would copy to every bound queue)
  assert.deepEqual(delayQueueArguments({ queue: 'q', exchange: 'fan', routingKey: '', routesByKey: false }, 120_000), {
    'x-message-ttl': 120_000,
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': 'q',
    'x-expires': 240_000,
  });
  // the default exchange
  assert.deepEqual(delayQueueArguments({ queue: 'q', exchange: '', routingKey: 'ignored', routesByKey: true }, 0)['x-dead-letter-routing-key'], 'q');
  assert.equal(delayQueueArguments({ queue: 'q', exchange: '', routingKey: '', routesByKey: true }, 0)['x-message-ttl'], 1);
});
