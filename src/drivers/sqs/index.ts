// The sqs driver (Amazon SQS and SQS-compatible servers, @aws-sdk/client-sqs): its descriptor, as
// src/drivers/registry.ts lists it. Importing this loads no AWS SDK (connect() does). See docs/drivers/sqs.md.

import type { DriverDescriptor } from '../driver.js';
import { SQS_CAPABILITIES } from './capabilities.js';
import { isFifo, normalizeSqsOptions, normalizeSqsSection, type SqsPipelineOptions, type SqsSettings } from './options.js';

export type { SqsPipelineOptions, SqsSettings } from './options.js';
export { normalizeSqsOptions, normalizeSqsSection } from './options.js';

export const descriptor: DriverDescriptor<SqsPipelineOptions, SqsSettings> = {
  name: 'sqs',
  aliases: [],
  // RoadRunner: without the section, credentials and region come from the environment (the AWS chain)
  section: { name: 'sqs', example: 'sqs: { region: eu-central-1 }', optional: true },
  capabilities: SQS_CAPABILITIES,
  normalizeSection: normalizeSqsSection,
  normalizeOptions: ({ pipeline, raw, full }) => {
    const options = normalizeSqsOptions(pipeline, raw, full);
    // RoadRunner: failed jobs come back (retain_failed_jobs: after error_visibility_timeout, by giving up)
    return { options, requeueOnFail: !options.retainFailedJobs, redialTimeoutMs: 60_000 };
  },
  crossCheck(raw) {
    const queue = typeof raw['queue'] === 'string' ? raw['queue'] : undefined;
    const attrs = raw['attributes'] !== null && typeof raw['attributes'] === 'object' ? (raw['attributes'] as Record<string, unknown>) : {};
    const fifoAttr = Object.entries(attrs).find(([k]) => k.toLowerCase() === 'fifoqueue')?.[1];
    if (queue !== undefined && String(fifoAttr) === 'true' && !isFifo(queue)) {
      return [{ at: 'config', message: `queue "${queue}" has attributes.FifoQueue: true, and SQS requires a FIFO queue's name to end in .fifo` }];
    }
    return [];
  },
  async connect({ section, logger }) {
    const { createSqsConnection } = await import('./connection.js');
    const log = logger.child({ driver: 'sqs' });
    if (section === undefined) log.info('no `sqs` section: credentials and region come from the standard AWS chain (environment, profile, web identity, instance role)');
    return createSqsConnection({ settings: section ?? {}, logger: log });
  },
  telemetry: (p) => ({ system: 'aws_sqs', destination: p.options.queue }),
};
