// Every reference worker in examples/ (node, python, php, go, shell) driven directly over protocol v1:
// ack, nack with requeue and delay, failure nack, follow-up publish, several jobs in a row, clean exit on stop.
// One table of behaviours covers all languages, since they implement the same payload conventions.
// A language whose runtime is missing is skipped with a reason, except node and python under CI=true.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { languages, WorkerSession, jobFrame } from './worker-harness.js';

const inCi = process.env.CI === 'true';

for (const lang of languages) {
  const missing = lang.missing();
  const skip = missing !== undefined && !(inCi && lang.requiredInCi) ? missing : false;

  describe(`examples/${lang.name} worker`, { skip, timeout: 60_000 }, () => {
    let cleanup: (() => void) | undefined;
    const sessions: WorkerSession[] = [];
    const start = (env: Record<string, string> = {}): WorkerSession => {
      if (missing !== undefined) throw new Error(`${missing}, and CI=true requires it`);
      const s = new WorkerSession(lang.argv(), env);
      sessions.push(s);
      return s;
    };
    /** stop, expect exit 0, exactly `replies` frames in total and nothing but JSON objects on stdout */
    const stopClean = async (s: WorkerSession, replies: number): Promise<void> => {
      assert.equal(await s.stop(), 0, `exit code; stderr: ${s.stderr}`);
      assert.equal(s.frames.length, replies, `reply frames: ${JSON.stringify(s.frames)}`);
      assert.deepEqual(s.nonJsonLines, []);
    };

    before(() => {
      if (missing === undefined) cleanup = lang.prepare?.();
    });
    after(() => {
      for (const s of sessions) s.kill();
      cleanup?.();
    });

    test('announces its capacity once, first: 1 for a serial worker, 64 for the concurrent Node.js one', async () => {
      const s = start();
      const job = jobFrame({ to: 'a@b.c' });
      s.send(job);
      await s.waitFrames(1);
      await stopClean(s, 1);
      assert.deepEqual(s.readies, [{ frame: { type: 'ready', max_concurrency: lang.name === 'node' ? 64 : 1 }, after: 0 }]);
    });

    test('acks a job and logs it to stderr', async () => {
      const s = start();
      const job = jobFrame({ to: 'a@b.c' });
      s.send(job);
      assert.deepEqual(await s.waitFrames(1), [{ type: 'ack', id: job.id }]);
      await stopClean(s, 1);
      assert.match(s.stderr, new RegExp(`processed SendEmail ${job.id} \\{"to":"a@b\\.c"\\}`));
    });

    test('nacks with requeue and a delay for {"delay_retry": N} on attempt 1, acks the retry', async () => {
      const s = start();
      const job = jobFrame({ delay_retry: 30 });
      s.send(job);
      assert.deepEqual(await s.waitFrames(1), [{ type: 'nack', id: job.id, error: 'retry requested', requeue: true, delay: 30 }]);
      s.send({ ...job, attempt: 2 });
      assert.deepEqual(await s.waitFrames(2), [
        { type: 'nack', id: job.id, error: 'retry requested', requeue: true, delay: 30 },
        { type: 'ack', id: job.id },
      ]);
      await stopClean(s, 2);
      assert.match(s.stderr, new RegExp(`retrying SendEmail ${job.id} in 30s`));
      assert.match(s.stderr, new RegExp(`processed SendEmail ${job.id} \\{"delay_retry":30\\}`));
    });

    test('nacks without requeue for {"fail": reason}, leaving the retry policy to decide', async () => {
      const s = start();
      const job = jobFrame({ fail: 'SMTP 451' });
      s.send(job);
      assert.deepEqual(await s.waitFrames(1), [{ type: 'nack', id: job.id, error: 'SMTP 451' }]);
      await stopClean(s, 1);
      assert.match(s.stderr, /SMTP 451/);
    });

    test('publishes a follow-up to the same pipeline before acking', async () => {
      const s = start();
      const job = jobFrame({ follow_up: { job: 'Receipt', payload: { n: 1, tags: [], meta: {} } } });
      s.send(job);
      assert.deepEqual(await s.waitFrames(2), [
        { type: 'publish', id: job.id, pipeline: 'emails', job: 'Receipt', payload: { n: 1, tags: [], meta: {} } },
        { type: 'ack', id: job.id },
      ]);
      await stopClean(s, 2);
    });

    test('answers jobs sent together, one at a time, whatever their payload', async () => {
      const s = start({ JOBRUNNER_MAX_CONCURRENCY: '3' });
      const jobs = [
        jobFrame('plain text body'),
        jobFrame('AAEC/w==', { encoding: 'base64' }),
        jobFrame({ text: 'héllo "quoted" \\ back/slash\nnewline' }),
        jobFrame(null),
        jobFrame([1, 2, 3]),
      ];
      s.send(...jobs);
      assert.deepEqual(await s.waitFrames(jobs.length), jobs.map((j) => ({ type: 'ack', id: j.id })));
      await stopClean(s, jobs.length);
    });

    test('finishes the job it holds when stop arrives in the same write, then exits 0', async () => {
      const s = start();
      const job = jobFrame({ follow_up: { job: 'Receipt' } });
      s.send(job, { type: 'stop' });
      assert.equal(await s.waitExit(), 0, `stderr: ${s.stderr}`);
      assert.deepEqual(s.frames, [
        { type: 'publish', id: job.id, pipeline: 'emails', job: 'Receipt', payload: {} },
        { type: 'ack', id: job.id },
      ]);
    });

    test('exits 0 on stop when idle, with stdin still open', async () => {
      const s = start();
      await stopClean(s, 0);
    });
  });
}
