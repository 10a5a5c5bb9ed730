// Measurements shared by the benchmark modes: throughput by watching a queue drain, latency samples
// from files the consumers write, percentiles.

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchBroker } from './broker.js';
import { cpuSeconds } from './proc.js';
import { sleep } from './consumers.js';

export interface Throughput {
  /** messages per second while the queue drained */
  rate: number;
  /** CPU seconds of `pid` per 10,000 messages over the same window (undefined without a pid) */
  cpuPer10k: number | undefined;
}

/**
 * Watches `queue` (ready messages, every 10 ms) from the first poll that shows consumption until it
 * is empty: rate = messages taken in that window / its length. Raw consumers and jobrunner are
 * measured the same way. `pid`'s CPU time is read at both ends.
 */
export async function drain(broker: BenchBroker, queue: string, n: number, pid: number | undefined, timeoutMs: number): Promise<Throughput> {
  const deadline = Date.now() + timeoutMs;
  let t0 = 0;
  let r0 = 0;
  let cpu0 = 0;
  for (;;) {
    const { ready } = await broker.count(queue);
    const now = performance.now();
    if (t0 === 0 && ready < n) {
      t0 = now;
      r0 = ready;
      cpu0 = pid ? cpuSeconds(pid) : 0;
    }
    if (t0 !== 0 && ready === 0) {
      const seconds = (now - t0) / 1000;
      const cpu = pid ? cpuSeconds(pid) - cpu0 : undefined;
      return { rate: r0 / seconds, cpuPer10k: cpu === undefined ? undefined : (cpu / r0) * 10_000 };
    }
    if (Date.now() > deadline) throw new Error(`queue ${queue} still holds ${ready} of ${n} messages after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** waits until the queue has no ready messages (latency runs: the tail of the paced publish) */
export async function waitEmpty(broker: BenchBroker, queue: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await broker.count(queue)).ready > 0) {
    if (Date.now() > deadline) throw new Error(`queue ${queue} not drained within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** every latency sample (ms) written into dir, then empties dir */
export function collectLatency(dir: string): number[] {
  const out: number[] = [];
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) if (line !== '') out.push(Number(line));
    rmSync(join(dir, f));
  }
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}
