// `npm run bench` (issue 7): jobrunner beside the raw clients on the local RabbitMQ 3.10 and 4.0 and the
// local nats-server. For each target (amqp091 on 3.10, amqp091 on 4.0, amqp1 on 4.0, nats) and each consumer (the raw client,
// jobrunner with the no-op Node.js worker, with the no-op Python worker, with every default, and with
// the goridge no-op PHP worker under `pool.protocol: goridge`, BENCH_GORIDGE_WORKERS processes), a
// fresh queue of N persistent 100-byte JSON messages is drained and timed; then the same consumer
// takes messages published at a fixed 1,000/s, each stamped with its publish time, for p50/p99.
// jobrunner runs as the built CLI in a child process: RSS and CPU are read from /proc for it alone.
// Env: BENCH_N (100000), BENCH_QUICK=1 (20000, one run), BENCH_RUNS (3), BENCH_TARGETS and
// BENCH_CONSUMERS (comma-separated substrings), BENCH_PREFETCH / BENCH_WORKERS / BENCH_CONCURRENCY /
// BENCH_MULTIPLE_ACK (the tuned rows), BENCH_RSS=1 (the RSS-growth mode instead, bench/rss.ts),
// BENCH_KEEP_LOGS=1 (keep the daemons' logs; BENCH_NODE_ARGS=--trace-gc writes there too).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker, type BenchBroker } from './lib/broker.js';
import { NatsBroker, natsStream } from './lib/nats-broker.js';
import { daemonConfig, NATS_CONSUMER, freePort, killChildren, ROOT, sleep, startDaemon, startRaw, type Driver, type Tuning, type WorkerKind } from './lib/consumers.js';
import { collectLatency, drain, median, percentile, waitEmpty } from './lib/measure.js';
import { rssMb } from './lib/proc.js';
import { environment, formatTable, writeDocs, type Results, type Row } from './lib/report.js';

const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const N = Number(env.BENCH_N ?? (QUICK ? 20_000 : 100_000));
const RUNS = Number(env.BENCH_RUNS ?? (QUICK ? 1 : 3));
// per run; p50 and p99 are medians over the runs, so one broker or VM hiccup of ~20 ms (which once read
// as a 13-19 ms p99 of a single run) does not decide the figure alone
const LATENCY_N = Number(env.BENCH_LATENCY_N ?? (QUICK ? 1000 : 3000));
const LATENCY_RATE = 1000;
const URL_310 = env.BENCH_URL_310 ?? 'amqp://guest:guest@127.0.0.1:5672';
const URL_40 = env.BENCH_URL_40 ?? 'amqp://guest:guest@127.0.0.1:5673';
const URL_NATS = env.BENCH_URL_NATS ?? (env.NATS_URLS ?? 'nats://127.0.0.1:4222').split(/\s+/)[0] ?? 'nats://127.0.0.1:4222';

/**
 * An idle daemon's RSS once it has settled. V8's memory reducer returns the start-up heap growth (~5 MB)
 * after the process has been idle for 8 s, and when its first check finds the process not idle enough
 * it looks again 8 s later: so read RSS from 6 s on and take it once it has dropped from that level (or
 * at 20 s, whatever it is then).
 */
async function settledRss(pid: number): Promise<number> {
  const started = performance.now();
  await sleep(6000);
  const before = rssMb(pid).rss;
  let rss = before;
  while (performance.now() - started < 20_000) {
    await sleep(500);
    rss = rssMb(pid).rss;
    if (rss < before - 2) {
      await sleep(1000); // the reducer runs up to three collections, 500 ms apart
      return rssMb(pid).rss;
    }
  }
  return rss;
}

export const TUNED: Tuning = {
  prefetch: Number(env.BENCH_PREFETCH ?? 1000),
  numWorkers: Number(env.BENCH_WORKERS ?? 1),
  maxConcurrency: Number(env.BENCH_CONCURRENCY ?? 1000),
  multipleAck: (env.BENCH_MULTIPLE_ACK ?? 'true') === 'true',
};

interface Target {
  name: string;
  driver: Driver;
  url: string;
}
const TARGETS: Target[] = [
  { name: 'amqp091 / RabbitMQ 3.10', driver: 'amqp091', url: URL_310 },
  { name: 'amqp091 / RabbitMQ 4.0', driver: 'amqp091', url: URL_40 },
  { name: 'amqp1 / RabbitMQ 4.0', driver: 'amqp1', url: URL_40 },
  { name: 'nats / nats-server', driver: 'nats', url: URL_NATS },
];

function openBroker(t: Target): Promise<BenchBroker> {
  return t.driver === 'nats' ? NatsBroker.open(t.url) : Broker.open(t.url);
}

type ConsumerKind = 'raw' | 'node' | 'python' | 'defaults' | 'goridge';
const CONSUMERS: ConsumerKind[] = ['raw', 'node', 'python', 'defaults', 'goridge'];

function pick<T extends string | { name: string }>(all: T[], filter: string | undefined): T[] {
  if (!filter) return all;
  const parts = filter.split(',').map((s) => s.trim().toLowerCase());
  return all.filter((t) => parts.some((p) => (typeof t === 'string' ? t : t.name).toLowerCase().includes(p)));
}

let seq = 0;
function queueName(t: Target, c: ConsumerKind): string {
  const where = t.driver === 'nats' ? 'js' : t.url.endsWith('5672') ? '310' : '40';
  return `bench.${t.driver}.${where}.${c}.${process.pid}.${++seq}`;
}

/** One consumer on one target: throughput on a full queue, then latency at 1,000/s; idle RSS on the first run. */
async function measureOne(t: Target, c: ConsumerKind, work: string, firstRun: boolean): Promise<Row> {
  const broker = await openBroker(t);
  const queue = queueName(t, c);
  const latencyDir = mkdtempSync(join(work, 'lat-'));
  const log = join(work, `${queue}.log`);
  const row: Row = { target: t.name, consumer: c, rate: NaN, ratio: NaN, p50: NaN, p99: NaN, peakRssMb: NaN, idleRssMb: NaN, cpuPer10k: NaN, leftover: 0 };
  try {
    await broker.declare(queue);
    let proc: { pid: number; stop(): Promise<void> };
    if (c === 'raw') {
      await broker.fill(queue, N);
      proc = await startRaw(t.driver, t.url, queue, TUNED.prefetch, latencyDir, log, t.driver === 'nats' ? { BENCH_STREAM: natsStream(queue), BENCH_CONSUMER: NATS_CONSUMER } : {});
    } else {
      const worker: WorkerKind = c === 'python' ? 'python' : c === 'goridge' ? 'goridge' : 'node';
      const yaml = daemonConfig(t.driver, t.url, queue, worker, await freePort(), c === 'defaults' ? undefined : TUNED, natsStream(queue));
      const daemon = await startDaemon(mkdtempSync(join(work, 'cfg-')), yaml, latencyDir, log);
      proc = daemon;
      // idle RSS, first run only (the figure reported): the settled figure, once V8's memory reducer has
      // given start-up garbage back (see settledRss); later runs do not wait for it
      if (firstRun) row.idleRssMb = await settledRss(daemon.pid);
      else await sleep(1500);
      await daemon.pause();
      await broker.fill(queue, N);
      await daemon.resume();
    }
    try {
      const tp = await drain(broker, queue, N, proc.pid, 300_000);
      row.rate = tp.rate;
      row.cpuPer10k = tp.cpuPer10k ?? NaN;
      await sleep(500);
      await broker.paced(queue, LATENCY_N, LATENCY_RATE, true);
      await waitEmpty(broker, queue, 30_000);
      await sleep(500);
      if (c !== 'raw') row.peakRssMb = rssMb(proc.pid).peak;
    } finally {
      await proc.stop();
    }
    const samples = collectLatency(latencyDir).sort((a, b) => a - b);
    row.p50 = percentile(samples, 50);
    row.p99 = percentile(samples, 99);
    if (samples.length < LATENCY_N) console.warn(`  ${t.name} ${c}: ${samples.length} latency samples of ${LATENCY_N}`);
    // jobrunner stopped gracefully: every message must have been acked
    if (c !== 'raw') {
      const left = await broker.count(queue);
      row.leftover = left.ready + (left.unacked ?? 0);
    }
  } finally {
    await broker.delete(queue);
    await broker.close();
    rmSync(latencyDir, { recursive: true, force: true });
  }
  return row;
}

/**
 * Runs one row again (up to 3 times) when it fails, after the broker answers again: other people's test
 * suites restart the shared brokers, and one lost row should not lose the whole run.
 */
async function withRetry(what: string, t: Target, fn: () => Promise<Row>): Promise<Row> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 3) throw err;
      console.warn(`  ${what}: ${err instanceof Error ? err.message : String(err)}; again once the broker answers`);
      const deadline = Date.now() + 120_000;
      for (;;) {
        try {
          await (await openBroker(t)).close();
          break;
        } catch {
          if (Date.now() > deadline) throw err;
          await sleep(1000);
        }
      }
      await sleep(2000);
    }
  }
}

function maxOf(xs: number[]): number {
  const v = xs.filter(Number.isFinite);
  return v.length === 0 ? NaN : Math.max(...v);
}

async function main(): Promise<void> {
  if (env.BENCH_RSS === '1') {
    const { runRss } = await import('./rss.js');
    await runRss(URL_310, TUNED);
    return;
  }
  const started = Date.now();
  const targets = pick(TARGETS, env.BENCH_TARGETS);
  const consumers = pick(CONSUMERS, env.BENCH_CONSUMERS);
  const work = mkdtempSync(join(tmpdir(), 'jobrunner-bench-'));
  console.log(`jobrunner bench: N=${N}, ${RUNS} run(s), tuned rows: prefetch ${TUNED.prefetch}, num_workers ${TUNED.numWorkers}, max_concurrency ${TUNED.maxConcurrency}, multiple_ack ${TUNED.multipleAck}; logs in ${work}`);
  const all: Row[][] = [];
  for (let run = 0; run < RUNS; run++) {
    const rows: Row[] = [];
    for (const t of targets) {
      let raw = NaN;
      for (const c of consumers) {
        const row = await withRetry(`${t.name} ${c}`, t, () => measureOne(t, c, work, run === 0));
        if (c === 'raw') raw = row.rate;
        row.ratio = row.rate / raw;
        rows.push(row);
        console.log(`  run ${run + 1}: ${t.name.padEnd(24)} ${c.padEnd(8)} ${Math.round(row.rate).toString().padStart(7)} msg/s` + (Number.isFinite(row.ratio) && c !== 'raw' ? `  ${(row.ratio * 100).toFixed(0)}% of raw` : '') + (Number.isFinite(row.p99) ? `  p50 ${row.p50.toFixed(2)} ms p99 ${row.p99.toFixed(2)} ms` : '') + (row.leftover > 0 ? `  LEFT ${row.leftover} IN THE QUEUE` : ''));
      }
    }
    all.push(rows);
  }
  // medians over runs (throughput, ratio, CPU, p50, p99); idle RSS comes from the first run
  const final: Row[] = (all[0] ?? []).map((first, i) => ({
    ...first,
    rate: median(all.map((r) => r[i]?.rate ?? NaN)),
    ratio: median(all.map((r) => r[i]?.ratio ?? NaN)),
    cpuPer10k: median(all.map((r) => r[i]?.cpuPer10k ?? NaN)),
    p50: median(all.map((r) => r[i]?.p50 ?? NaN)),
    p99: median(all.map((r) => r[i]?.p99 ?? NaN)),
    peakRssMb: maxOf(all.map((r) => r[i]?.peakRssMb ?? NaN)),
    leftover: Math.max(...all.map((r) => r[i]?.leftover ?? 0)),
  }));
  const results: Results = {
    when: new Date().toISOString(),
    n: N,
    runs: RUNS,
    latencyN: LATENCY_N,
    tuned: TUNED,
    seconds: Math.round((Date.now() - started) / 1000),
    env: await environment([...new Set(targets.map((t) => t.url))]),
    rows: final,
  };
  console.log('\n' + formatTable(results));
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const name = QUICK || env.BENCH_TARGETS || env.BENCH_CONSUMERS || env.BENCH_N ? 'partial.json' : 'latest.json';
  writeFileSync(join(ROOT, 'bench/results', name), JSON.stringify(results, null, 2) + '\n');
  if (name === 'latest.json') {
    writeDocs();
    console.log('docs/benchmarks.md updated');
  }
  console.log(`done in ${results.seconds} s`);
  if (env.BENCH_KEEP_LOGS === '1') console.log(`logs kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killChildren();
    process.exit(130);
  });
}

main().catch((err: unknown) => {
  killChildren();
  console.error(err);
  process.exit(1);
});
