// The shared driver conformance suite run on the sqs driver against an SQS emulator (fauxqs on
// 127.0.0.1, in this process): not AWS. A dead-letter target is the queue's RedrivePolicy.

import { after, before } from 'node:test';
import type { PipelineConfig } from '../../src/config/types.js';
import { createSqsConnection } from '../../src/drivers/sqs/connection.js';
import { silentLogger } from '../../src/observability/logger.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { EMULATOR, startSqsEmulator, type SqsEmulator } from '../helpers/sqs-emulator.js';
import { runConformance, sleep, type ConformanceFactory } from './conformance.js';
import { sqsPipeline } from './sqs-helpers.js';

let emu: SqsEmulator;
before(async () => {
  emu = await startSqsEmulator();
});
after(async () => {
  await emu.stop();
});

const factory: ConformanceFactory = async ({ proxied }) => {
  let proxy: TcpProxy | undefined;
  let endpoint = emu.endpoint;
  if (proxied) {
    proxy = await startTcpProxy('127.0.0.1', emu.port);
    endpoint = `http://127.0.0.1:${proxy.port}`;
  }
  const conn = createSqsConnection({
    settings: { ...emu.settings, endpoint },
    logger: silentLogger(),
    backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 },
  });
  const queues: string[] = [];
  return {
    conn,
    ...(proxy === undefined ? {} : { proxy }),
    connectionless: true,
    pace: () => sleep(25),
    pipeline(opts): PipelineConfig {
      queues.push(opts.name);
      // a cut can lose a receive's answer in flight: SQS hands those messages out again after the
      // visibility timeout, kept short here so the cut case sees them within its wait
      const config: Record<string, unknown> = { queue: opts.name, prefetch: opts.prefetch ?? 10, visibility_timeout: 4 };
      if (opts.deadLetterTo !== undefined) {
        const dlq = (opts.deadLetterTo.options as unknown as { queue: string }).queue;
        config['attributes'] = { RedrivePolicy: { deadLetterTargetArn: emu.arn(dlq), maxReceiveCount: 1 } };
      }
      return sqsPipeline(opts.name, config);
    },
    async cleanup() {
      for (const q of queues) emu.track(q);
      await emu.cleanup();
      await proxy?.close();
    },
  };
};

runConformance(`sqs on the ${EMULATOR}`, factory);
