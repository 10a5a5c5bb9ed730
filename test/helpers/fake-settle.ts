// Fakes for settlement tests: a pipeline config, a broker with chosen capabilities, and a delivery that
// records which settlement call settle() makes. Used by test/pipelines/*.test.ts and the memory conformance run.

import { pino } from 'pino';
import type { PipelineConfig, RetryConfig } from '../../src/config/types.js';
import type { BrokerPipeline, Capabilities, Delivery, Headers } from '../../src/drivers/driver.js';
import { MEMORY_CAPABILITIES } from '../../src/drivers/memory/capabilities.js';

export const silent = pino({ level: 'silent' });
export const RETRY: RetryConfig = { maxAttempts: 3, backoff: { initialMs: 1000, maxMs: 4000, multiplier: 2, jitter: 0 } };

/** a pipeline's normalised config as the daemon hands it to a pipeline: `extra` replaces whole keys, `pool` key by key */
export function pipelineConfig(extra: Partial<Omit<PipelineConfig, 'pool'>> & { pool?: Partial<PipelineConfig['pool']> } = {}): PipelineConfig {
  const { pool, ...rest } = extra;
  return {
    name: 'p',
    driver: 'fake',
    command: ['/bin/true'],
    env: {},
    consume: true,
    requeueOnFail: false,
    redialTimeoutMs: 0,
    options: { prefetch: 1, priority: 0 },
    ...rest,
    pool: { numWorkers: 1, maxConcurrency: 1, maxJobs: 0, allocateTimeoutMs: 1000, destroyTimeoutMs: 1000, execTtlMs: 0, maxWorkerMemoryMb: 0, protocol: 'jobrunner', ...pool },
  };
}

export function broker(caps: Partial<Capabilities>, checkDelay?: (ms: number) => Promise<void>): BrokerPipeline {
  const c: Capabilities = { ...MEMORY_CAPABILITIES, inProcess: false, ...caps };
  return {
    name: 'p',
    queue: 'p',
    declare: async () => undefined,
    consume: async () => undefined,
    cancel: async () => undefined,
    publish: async () => undefined,
    capabilities: () => c,
    ...(checkDelay ? { checkDelay } : {}),
    readyCount: async () => undefined,
    close: async () => undefined,
  };
}

/** a delivery that records each settlement call */
export function delivery(calls: string[], withRetryLater: boolean, attempt = 1): Delivery {
  const d: Delivery = {
    id: 'j1',
    job: 'job',
    body: Buffer.from('{}'),
    headers: {},
    attempt,
    redelivered: false,
    queue: 'p',
    ack: async () => void calls.push('ack'),
    reject: async (requeue: boolean) => void calls.push(`reject(${requeue})`),
  };
  if (withRetryLater) d.retryLater = async (ms: number, headers?: Headers) => void calls.push(`retryLater(${ms}${headers ? `, ${JSON.stringify(headers)}` : ''})`);
  return d;
}
