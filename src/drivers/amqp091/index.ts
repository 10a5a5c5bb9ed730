// The amqp091 driver (amqplib): what the daemon imports. See docs/drivers/amqp091.md.
export { createAmqp091Connection, type Amqp091ConnectionOptions } from './connection.js';
