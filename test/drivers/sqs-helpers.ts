// Helpers for the sqs driver tests: a PipelineConfig for an sqs pipeline from a `config:` mapping as a
// user writes it (normalised by the driver's own normaliser), and a connection to the emulator.

import type { PipelineConfig } from '../../src/config/types.js';
import { createSqsConnection, normalizeSqsOptions, type SqsConnection } from '../../src/drivers/sqs/index.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { Logger } from '../../src/observability/logger.js';
import type { SqsEmulator } from '../helpers/sqs-emulator.js';

export function sqsPipeline(name: string, config: Record<string, unknown>, extra: Partial<Pick<PipelineConfig, 'job' | 'deadLetter' | 'retry'>> = {}): PipelineConfig {
  return {
    name,
    command: ['/bin/true'],
    env: {},
    pool: { numWorkers: 1, maxConcurrency: 1, maxJobs: 0, allocateTimeoutMs: 5000, destroyTimeoutMs: 5000, execTtlMs: 0, maxWorkerMemoryMb: 0 },
    consume: true,
    ...extra,
    driver: 'sqs',
    options: normalizeSqsOptions(name, config, config),
  } as unknown as PipelineConfig;
}

export function emulatorConnection(emu: SqsEmulator, logger: Logger = silentLogger()): SqsConnection {
  return createSqsConnection({ settings: emu.settings, logger, backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 } });
}
