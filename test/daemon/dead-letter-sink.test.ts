// A pipeline that is only a dead-letter sink needs no worker command: the file validates and the daemon
// runs; a job dead-lettered into it waits there; resuming it is refused with a clear error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXTURE_WORKERS, startDaemon, waitFor } from '../helpers/daemon.js';

test('a dead-letter sink without a worker command: jobs land in it; resuming it is refused', { timeout: 60_000 }, async () => {
  const d = await startDaemon(
    [
      'version: "3"',
      'http: { address: "127.0.0.1:0" }',
      'jobs:',
      '  consume: [work]',
      '  pipelines:',
      '    work:',
      '      driver: memory',
      `      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(`${FIXTURE_WORKERS}/nack.mjs`)}]`,
      '      retry: { max_attempts: 1 }',
      '      dead_letter: { pipeline: dead }',
      '    dead: { driver: memory }',
      '',
    ].join('\n'),
  );
  try {
    await waitFor('work consumes', () => d.daemon.readiness().ok);
    await d.daemon.push('work', { job: 'J', payload: {}, id: 'to-the-sink' });
    await waitFor('the job reached the sink', async () => (await d.daemon.listPipelines()).find((p) => p.pipeline === 'dead')?.ready === 1);
    await assert.rejects(d.daemon.resume('dead'), /pipeline dead has no worker command \(set server\.command, jobs\.pool\.command or its own `command`\), so it cannot be consumed/);
  } finally {
    await d.stop();
  }
});
