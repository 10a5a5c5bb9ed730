// Every driver jobrunner has, one line each: the daemon opens connections, src/config/ normalises
// options and src/observability/ names brokers only through these descriptors (src/drivers/driver.ts).
// Adding a driver: its folder with an index.ts exporting `descriptor`, one line here, its schema
// fragment (docs/drivers/adding-a-driver.md).

import { JobrunnerError } from '../shared/errors.js';
import type { DriverDescriptor } from './driver.js';
import { descriptor as amqp091 } from './amqp091/index.js';
import { descriptor as amqp1 } from './amqp1/index.js';
import { descriptor as memory } from './memory/index.js';
import { descriptor as nats } from './nats/index.js';
import { descriptor as sqs } from './sqs/index.js';

// the descriptors are generic in their options; the registry holds them by their common face
type AnyDescriptor = DriverDescriptor<never, never>;

export const DRIVERS: readonly DriverDescriptor[] = [amqp091, amqp1, nats, memory, sqs].map((d) => d as unknown as AnyDescriptor as unknown as DriverDescriptor);

const byName = new Map<string, DriverDescriptor>();
for (const d of DRIVERS) for (const n of [d.name, ...d.aliases]) byName.set(n, d);

/** the descriptor for a name or alias, or undefined */
export function findDriver(name: string): DriverDescriptor | undefined {
  return byName.get(name);
}

/** the descriptor for a canonical name or alias; a name the schema let through is always known */
export function driverFor(name: string): DriverDescriptor {
  const d = byName.get(name);
  if (d === undefined) throw new JobrunnerError('E_CONFIG_SCHEMA', `no driver named ${JSON.stringify(name)} (known: ${[...byName.keys()].join(', ')})`);
  return d;
}

/** `amqp091 (alias amqp), amqp1, nats, memory, sqs`: for messages */
export function describeDrivers(): string {
  return DRIVERS.map((d) => (d.aliases.length > 0 ? `${d.name} (alias ${d.aliases.join(', ')})` : d.name)).join(', ');
}
