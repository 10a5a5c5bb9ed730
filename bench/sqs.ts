// `npm run bench:sqs`: jobrunner's sqs driver beside a raw @aws-sdk/client-sqs consumer, both on an SQS
// emulator (fauxqs, its own process, 127.0.0.1). The emulator is not SQS: only the ratio means anything.
// For each run and consumer a fresh queue of N 100-byte JSON messages is drained and timed (from the
// first message taken to an empty queue). jobrunner runs as the built CLI with the no-op Node.js worker.
// Env: BENCH_SQS_N (5000), BENCH_SQS_RUNS (3), BENCH_SQS_PREFETCH (100: jobrunner's prefetch; the raw
// consumer runs prefetch/10 polls of 10), BENCH_SQS_CONCURRENCY (100: the worker's max_concurrency).

import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SQSClient, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { freePort, killChildren, ROOT, sleep, startDaemon, WORKER_COMMAND } from './lib/consumers.js';
import { cpuSeconds } from './lib/proc.js';

const env = process.env;
const N = Number(env.BENCH_SQS_N ?? 5000);
const RUNS = Number(env.BENCH_SQS_RUNS ?? 3);
const PREFETCH = Number(env.BENCH_SQS_PREFETCH ?? 100);
const CONCURRENCY = Number(env.BENCH_SQS_CONCURRENCY ?? 100);

function startChild(script: string, extraEnv: Record<string, string>): Promise<{ child: ChildProcess; message: unknown }> {
  const child = fork(join(ROOT, script), { cwd: ROOT, env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extraEnv }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve({ child, message }));
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise<void>((r) => child.once('exit', () => r()));
}

async function counts(client: SQSClient, url: string): Promise<{ visible: number; inFlight: number }> {
  const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
  return { visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0), inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) };
}

async function fill(client: SQSClient, url: string): Promise<void> {
  const body = JSON.stringify({ pad: 'x'.repeat(80) });
  const batches: Promise<unknown>[] = [];
  for (let i = 0; i < N; i += 10) {
    const entries = Array.from({ length: Math.min(10, N - i) }, (_, k) => ({
      Id: String(k),
      MessageBody: body,
      MessageAttributes: { rr_id: { DataType: 'String', StringValue: `m${i + k}` }, rr_job: { DataType: 'String', StringValue: 'Bench' } },
    }));
    batches.push(client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries })));
    if (batches.length >= 20) await Promise.all(batches.splice(0));
  }
  await Promise.all(batches);
}

/** from the first message taken until none is visible or in flight */
async function drain(client: SQSClient, url: string, pid: number): Promise<{ rate: number; cpuPer10k: number }> {
  const deadline = Date.now() + 300_000;
  let t0 = 0;
  let cpu0 = 0;
  for (;;) {
    const c = await counts(client, url);
    const now = performance.now();
    if (t0 === 0 && c.visible < N) {
      t0 = now;
      cpu0 = cpuSeconds(pid);
    }
    if (t0 !== 0 && c.visible === 0 && c.inFlight === 0) {
      const s = (now - t0) / 1000;
      return { rate: N / s, cpuPer10k: ((cpuSeconds(pid) - cpu0) / N) * 10_000 };
    }
    if (Date.now() > deadline) throw new Error(`queue still holds ${c.visible + c.inFlight} of ${N}`);
    await sleep(20);
  }
}

async function main(): Promise<void> {
  const emu = await startChild('bench/sqs-emulator.mjs', {});
  const endpoint = `http://127.0.0.1:${(emu.message as { port: number }).port}`;
  const client = new SQSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-bench-sqs-'));
  const rates: Record<'raw' | 'jobrunner', number[]> = { raw: [], jobrunner: [] };
  const cpu: Record<'raw' | 'jobrunner', number[]> = { raw: [], jobrunner: [] };
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const kind of ['raw', 'jobrunner'] as const) {
        const queue = `bench-${kind}-${run}-${process.pid}`;
        const url = (await client.send(new CreateQueueCommand({ QueueName: queue, Attributes: { VisibilityTimeout: '60' } }))).QueueUrl as string;
        await fill(client, url);
        let stop: () => Promise<void>;
        let pid: number;
        if (kind === 'raw') {
          const raw = await startChild('bench/raw/sqs.mjs', { BENCH_ENDPOINT: endpoint, BENCH_QUEUE: queue, BENCH_POLLS: String(Math.max(1, Math.ceil(PREFETCH / 10))) });
          pid = raw.child.pid ?? 0;
          stop = () => stopChild(raw.child);
        } else {
          const port = await freePort();
          const runDir = join(dir, `run-${run}`);
          mkdirSync(runDir, { recursive: true });
          const yaml = `version: "3"
server:
  command: "${WORKER_COMMAND.node}"
  env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" }
sqs: { endpoint: "${endpoint}", key: bench, secret: bench, region: us-east-1 }
http:
  address: "127.0.0.1:${port}"
logs: { level: warn }
jobs:
  consume: ["bench"]
  pool: { num_workers: 1, max_concurrency: ${CONCURRENCY} }
  pipelines:
    bench:
      driver: sqs
      config: { queue: "${queue}", prefetch: ${PREFETCH} }
`;
          const d = await startDaemon(runDir, yaml, runDir, join(runDir, 'daemon.log'));
          pid = d.pid;
          stop = () => d.stop();
        }
        try {
          const r = await drain(client, url, pid);
          rates[kind].push(r.rate);
          cpu[kind].push(r.cpuPer10k);
          console.log(`run ${run} ${kind}: ${r.rate.toFixed(0)} msg/s, ${r.cpuPer10k.toFixed(2)} CPU s / 10k`);
        } finally {
          await stop();
          await client.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
        }
      }
    }
  } finally {
    client.destroy();
    await stopChild(emu.child);
    rmSync(dir, { recursive: true, force: true });
  }
  const med = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? NaN;
  const result = {
    when: new Date().toISOString(),
    n: N,
    runs: RUNS,
    prefetch: PREFETCH,
    maxConcurrency: CONCURRENCY,
    rawRate: med(rates.raw),
    jobrunnerRate: med(rates.jobrunner),
    ratio: med(rates.jobrunner) / med(rates.raw),
    rawCpuPer10k: med(cpu.raw),
    jobrunnerCpuPer10k: med(cpu.jobrunner),
    note: 'SQS emulator (fauxqs), not AWS: only the ratio means anything',
  };
  writeFileSync(join(ROOT, 'bench/results/sqs.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(`median of ${RUNS}: raw ${result.rawRate.toFixed(0)} msg/s, jobrunner ${result.jobrunnerRate.toFixed(0)} msg/s: ${(result.ratio * 100).toFixed(0)}% of the raw SDK consumer (emulator, not AWS)`);
}

process.once('SIGINT', () => {
  killChildren();
  process.exit(130);
});
await main();
