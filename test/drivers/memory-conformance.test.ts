// The driver conformance suite against the in-process memory driver: the same cases as every broker
// driver; the connection-cut case is skipped by its capabilities (inProcess), and its broker-side dead
// letters are read from its dead-letter list.

import { createMemoryConnection, type MemoryPipeline } from '../../src/drivers/memory/memory.js';
import type { PipelineConfig } from '../../src/config/types.js';
import type { MemoryPipelineOptions } from '../../src/drivers/memory/options.js';
import { silentLogger } from '../../src/observability/logger.js';
import { runConformance } from './conformance.js';
import { pipelineConfig } from '../helpers/fake-settle.js';

runConformance('memory', async () => {
  const conn = createMemoryConnection({ logger: silentLogger() });
  return {
    conn,
    pipeline(opts): PipelineConfig<MemoryPipelineOptions> {
      return pipelineConfig({ name: opts.name, driver: 'memory', options: { prefetch: opts.prefetch ?? 10, priority: 0 } }) as PipelineConfig<MemoryPipelineOptions>;
    },
    deadLettered: (pipe) => (pipe as MemoryPipeline).deadLetters.map((d) => d.job.id),
    cleanup: async () => undefined,
  };
});
