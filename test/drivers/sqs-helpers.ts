// Helpers for the sqs driver tests: a PipelineConfig for an sqs pipeline from a `config:` mapping as a
// user writes it (normalised by the driver's own normaliser), and a connection to the emulator.

import { readFileSync } from 'node:fs';
import type { PipelineConfig } from '../../src/config/types.js';
import { createSqsConnection, type SqsConnection } from '../../src/drivers/sqs/connection.js';
import { descriptor } from '../../src/drivers/sqs/index.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { Logger } from '../../src/observability/logger.js';
import type { SqsEmulator } from '../helpers/sqs-emulator.js';

const schema = JSON.parse(readFileSync(new URL('../../src/drivers/sqs/schema.json', import.meta.url), 'utf8')) as {
  definitions: { sqsPipeline: { properties: Record<string, { default?: unknown }> } };
};
/** the schema's defaults, as ajv fills them in for a loaded config */
const DEFAULTS: Record<string, unknown> = Object.fromEntries(
  Object.entries(schema.definitions.sqsPipeline.properties)
    .filter(([, v]) => v.default !== undefined)
    .map(([k, v]) => [k, v.default]),
);

export function sqsPipeline(name: string, config: Record<string, unknown>, extra: Partial<Pick<PipelineConfig, 'job' | 'deadLetter' | 'retry'>> = {}): PipelineConfig {
  return {
    name,
    command: ['/bin/true'],
    env: {},
    pool: { numWorkers: 1, maxConcurrency: 1, protocol: 'jobrunner', maxJobs: 0, allocateTimeoutMs: 5000, destroyTimeoutMs: 5000, execTtlMs: 0, maxWorkerMemoryMb: 0 },
    consume: true,
    ...extra,
    driver: 'sqs',
    ...descriptor.normalizeOptions({ pipeline: name, raw: config, full: { ...DEFAULTS, ...config } }),
  } as PipelineConfig;
}

export function emulatorConnection(emu: SqsEmulator, logger: Logger = silentLogger()): SqsConnection {
  return createSqsConnection({ settings: emu.settings, logger, backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 } });
}
