// The in-process memory driver: its descriptor, as src/drivers/registry.ts lists it.
// See docs/drivers/memory.md.

import { numOf } from '../../config/values.js';
import type { DriverDescriptor } from '../driver.js';
import { MEMORY_CAPABILITIES } from './capabilities.js';
import type { MemoryPipelineOptions } from './options.js';

export const descriptor: DriverDescriptor<MemoryPipelineOptions> = {
  name: 'memory',
  aliases: [],
  capabilities: MEMORY_CAPABILITIES,
  // no connection to redial; no RoadRunner requeue_on_fail (a failed job is dead-lettered)
  normalizeOptions: ({ full }) => ({ options: { prefetch: numOf(full, 'prefetch'), priority: numOf(full, 'priority') }, requeueOnFail: false, redialTimeoutMs: 0 }),
  async connect({ logger }) {
    const { createMemoryConnection } = await import('./memory.js');
    return createMemoryConnection({ logger: logger.child({ driver: 'memory' }) });
  },
  telemetry: (p) => ({ system: 'memory', destination: p.name }),
};
