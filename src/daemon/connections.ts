// Chooses the driver adapter for a pipeline group. Broker clients are imported only when a pipeline
// uses them, so a memory-only daemon never loads amqplib or rhea.

import type { Config, DriverName } from '../config/types.js';
import type { DriverConnection } from '../drivers/driver.js';
import type { Logger } from '../observability/logger.js';
import { JobrunnerError } from '../shared/errors.js';

export async function createConnection(driver: DriverName, config: Config, logger: Logger): Promise<DriverConnection> {
  switch (driver) {
    case 'memory': {
      const { createMemoryConnection } = await import('../drivers/memory/memory.js');
      return createMemoryConnection({ logger: logger.child({ driver }) });
    }
    case 'amqp091': {
      if (!config.amqp) throw new JobrunnerError('E_CONFIG_REF', 'amqp091 pipelines need an `amqp` section with `addr`');
      const { createAmqp091Connection } = await import('../drivers/amqp091/index.js');
      return createAmqp091Connection({ config: config.amqp, logger: logger.child({ driver }) });
    }
    case 'amqp1': {
      if (!config.amqp1) throw new JobrunnerError('E_CONFIG_REF', 'amqp1 pipelines need an `amqp1` section with `addr`');
      const { createAmqp1Connection } = await import('../drivers/amqp1/index.js');
      // the amqp1 driver names itself in its log lines
      return createAmqp1Connection({ config: config.amqp1, logger });
    }
    default: {
      const never: never = driver;
      throw new JobrunnerError('E_CONFIG_SCHEMA', `unknown driver ${String(never)}`);
    }
  }
}
