// `npm run bench:nats`: jobrunner's nats driver beside a raw @nats-io/jetstream consumer (bench/raw/nats.mjs:
// the same durable pull consumer, explicit acks, the same in-flight limit), on the nats-server in
// NATS_URLS. For each run and consumer a fresh stream of N 100-byte RoadRunner envelopes is drained and
// timed (from the first message taken to none pending and none unacked). jobrunner runs as the built CLI
// with its defaults (prefetch 10, RoadRunner's) and the no-op Node.js and Python workers.
// Env: NATS_URLS, BENCH_NATS_N (5000), BENCH_NATS_RUNS (3), BENCH_NATS_PREFETCH (10).

import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { freePort, killChildren, ROOT, sleep, startDaemon, WORKER_COMMAND } from './lib/consumers.js';
import { cpuSeconds } from './lib/proc.js';

const env = process.env;
const URL_ = (env.NATS_URLS ?? 'nats://127.0.0.1:4222').split(/\s+/)[0] as string;
const N = Number(env.BENCH_NATS_N ?? 5000);
const RUNS = Number(env.BENCH_NATS_RUNS ?? 3);
const PREFETCH = Number(env.BENCH_NATS_PREFETCH ?? 10);
type Kind = 'raw' | 'node' | 'python';
const KINDS: Kind[] = ['raw', 'node', 'python'];

function startRaw(stream: string, consumer: string): Promise<ChildProcess> {
  const child = fork(join(ROOT, 'bench/raw/nats.mjs'), { cwd: ROOT, env: { ...process.env, BENCH_URL: URL_, BENCH_STREAM: stream, BENCH_CONSUMER: consumer, BENCH_PREFETCH: String(PREFETCH) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`bench/raw/nats.mjs exited (${code})`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise<void>((r) => child.once('exit', () => r()));
}

/** from the first message taken until none is pending or unacked */
async function drain(jsm: JetStreamManager, stream: string, consumer: string, pid: number): Promise<{ rate: number; cpuPer10k: number }> {
  const deadline = Date.now() + 300_000;
  let t0 = 0;
  let cpu0 = 0;
  for (;;) {
    const i = await jsm.consumers.info(stream, consumer).catch(() => undefined);
    const now = performance.now();
    if (i !== undefined && t0 === 0 && i.num_pending < N) {
      t0 = now;
      cpu0 = cpuSeconds(pid);
    }
    if (i !== undefined && t0 !== 0 && i.num_pending === 0 && i.num_ack_pending === 0) {
      const s = (now - t0) / 1000;
      return { rate: N / s, cpuPer10k: ((cpuSeconds(pid) - cpu0) / N) * 10_000 };
    }
    if (Date.now() > deadline) throw new Error(`stream ${stream} still holds messages`);
    await sleep(20);
  }
}

async function main(): Promise<void> {
  const nc = await connect({ servers: URL_ });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-bench-nats-'));
  const rates: Record<Kind, number[]> = { raw: [], node: [], python: [] };
  const cpu: Record<Kind, number[]> = { raw: [], node: [], python: [] };
  const body = JSON.stringify({ job: 'Bench', id: '', payload: Buffer.from(JSON.stringify({ pad: 'x'.repeat(40) })).toString('base64'), options: { priority: 10, pipeline: 'bench', delay: 0, auto_ack: false } });
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const kind of KINDS) {
        const stream = `BENCH_${kind}_${run}_${process.pid}`;
        const subject = `bench.${kind}.${run}.${process.pid}`;
        const consumer = 'jobrunner-bench';
        await jsm.streams.add({ name: stream, subjects: [subject] });
        // the consumer as the driver creates it, so both sides start from the same state
        await jsm.consumers.add(stream, { durable_name: consumer, ack_policy: AckPolicy.Explicit, max_ack_pending: -1, max_deliver: -1, filter_subject: subject });
        const pubs: Promise<unknown>[] = [];
        for (let i = 0; i < N; i++) {
          pubs.push(js.publish(subject, body.replace('"id":""', `"id":"m${i}"`)));
          if (pubs.length >= 500) await Promise.all(pubs.splice(0));
        }
        await Promise.all(pubs);
        let stop: () => Promise<void>;
        let pid: number;
        if (kind === 'raw') {
          const raw = await startRaw(stream, consumer);
          pid = raw.pid ?? 0;
          stop = () => stopChild(raw);
        } else {
          const port = await freePort();
          const runDir = join(dir, `${kind}-${run}`);
          mkdirSync(runDir, { recursive: true });
          const yaml = `version: "3"
server:
  command: "${WORKER_COMMAND[kind]}"
nats: { addr: "${URL_}" }
http:
  address: "127.0.0.1:${port}"
logs: { level: warn }
jobs:
  consume: ["bench"]
  pipelines:
    bench:
      driver: nats
      config: { stream: "${stream}", subject: "${subject}", consumer: "${consumer}", prefetch: ${PREFETCH} }
`;
          const d = await startDaemon(runDir, yaml, runDir, join(runDir, 'daemon.log'));
          pid = d.pid;
          stop = () => d.stop();
        }
        try {
          const r = await drain(jsm, stream, consumer, pid);
          rates[kind].push(r.rate);
          cpu[kind].push(r.cpuPer10k);
          console.log(`run ${run} ${kind}: ${r.rate.toFixed(0)} msg/s, ${r.cpuPer10k.toFixed(2)} CPU s / 10k`);
        } finally {
          await stop();
          await jsm.streams.delete(stream).catch(() => undefined);
          await jsm.streams.delete(`JOBRUNNER_DELAY_${stream}`).catch(() => undefined);
        }
      }
    }
  } finally {
    await nc.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const med = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? NaN;
  const result = {
    when: new Date().toISOString(),
    n: N,
    runs: RUNS,
    prefetch: PREFETCH,
    rawRate: med(rates.raw),
    nodeRate: med(rates.node),
    pythonRate: med(rates.python),
    nodeRatio: med(rates.node) / med(rates.raw),
    pythonRatio: med(rates.python) / med(rates.raw),
    rawCpuPer10k: med(cpu.raw),
    nodeCpuPer10k: med(cpu.node),
    pythonCpuPer10k: med(cpu.python),
    note: 'a shared 2-core machine: indicative only',
  };
  writeFileSync(join(ROOT, 'bench/results/nats.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(`median of ${RUNS}: raw ${result.rawRate.toFixed(0)} msg/s; jobrunner Node.js ${result.nodeRate.toFixed(0)} (${(result.nodeRatio * 100).toFixed(0)}%), Python ${result.pythonRate.toFixed(0)} (${(result.pythonRatio * 100).toFixed(0)}%)`);
}

process.once('SIGINT', () => {
  killChildren();
  process.exit(130);
});
await main();
