// Opens the connection for a pipeline group through its driver's descriptor (src/drivers/registry.ts).
// Broker clients are imported only when a pipeline uses them, so a memory-only daemon never loads
// amqplib or rhea.

import type { Config, DriverName } from '../config/types.js';
import type { DriverConnection } from '../drivers/driver.js';
import { driverFor } from '../drivers/registry.js';
import type { Logger } from '../observability/logger.js';
import { JobrunnerError } from '../shared/errors.js';

export async function createConnection(driver: DriverName, config: Config, logger: Logger): Promise<DriverConnection> {
  const d = driverFor(driver);
  const section = d.section === undefined ? undefined : config.connections[d.section.name];
  if (d.section !== undefined && d.section.optional !== true && section === undefined) {
    throw new JobrunnerError('E_CONFIG_REF', `${d.name} pipelines need the top-level \`${d.section.name}\` section (${d.section.example})`);
  }
  return d.connect({ section, logger });
}
