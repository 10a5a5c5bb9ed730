// The amqp1 driver (rhea): RabbitMQ 3.x plugin, RabbitMQ 4.x native, Azure Service Bus, any AMQP 1.0 broker.
export { createAmqp1Connection, type Amqp1ConnectionOptions } from './connection.js';
export { detectBroker, type BrokerKind, type BrokerInfo } from './broker.js';
