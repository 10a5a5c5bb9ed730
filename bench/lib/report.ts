// Results of `npm run bench`: the table, the machine and versions, and docs/benchmarks.md, which is
// generated from bench/results/latest.json (and rss.json from BENCH_RSS=1) so it never drifts from them.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { connect } from '@nats-io/transport-node';
import { ROOT, type Tuning } from './consumers.js';

export interface Row {
  target: string;
  consumer: string;
  rate: number;
  ratio: number;
  p50: number;
  p99: number;
  peakRssMb: number;
  idleRssMb: number;
  cpuPer10k: number;
  /** messages still in the queue after jobrunner stopped (must be 0) */
  leftover: number;
}

export interface Results {
  when: string;
  n: number;
  runs: number;
  latencyN: number;
  tuned: Tuning;
  seconds: number;
  env: Record<string, string>;
  rows: Row[];
}

export interface RssResults {
  when: string;
  target: string;
  tuned: Tuning;
  /** [messages done, daemon RSS MB] */
  samples: [number, number][];
  growth: number;
}

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return '?';
  }
}

export async function environment(urls: string[]): Promise<Record<string, string>> {
  const brokers: string[] = [];
  for (const url of urls) {
    if (url.startsWith('nats')) {
      brokers.push(await natsVersion(url));
      continue;
    }
    try {
      const c = await amqplib.connect(url);
      const props = (c.connection as unknown as { serverProperties?: { version?: string } }).serverProperties;
      brokers.push(`${new URL(url).port}: RabbitMQ ${props?.version ?? '?'}`);
      await c.close();
    } catch {
      brokers.push(`${new URL(url).port}: unreachable`);
    }
  }
  const cpu = cpus();
  return {
    machine: `${cpu.length} × ${cpu[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}`,
    node: process.version,
    python: run('python3', ['--version']).replace('Python ', ''),
    php: run('php', ['-r', 'echo PHP_VERSION;']),
    brokers: brokers.join(', '),
    amqplib: version('amqplib'),
    rhea: version('rhea'),
    '@nats-io/jetstream': version('@nats-io/jetstream'),
    jobrunner: `${version('..')} @ ${run('git', ['rev-parse', '--short', 'HEAD'])}`,
  };
}

async function natsVersion(url: string): Promise<string> {
  const port = new URL(url).port || '4222';
  try {
    const nc = await connect({ servers: url });
    const v = nc.info?.version ?? '?';
    await nc.close();
    return `${port}: nats-server ${v}`;
  } catch {
    return `${port}: unreachable`;
  }
}

const f0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '–');
const pct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '–');

const LABEL: Record<string, string> = {
  raw: 'raw client',
  node: 'jobrunner, Node.js no-op',
  python: 'jobrunner, Python no-op',
  defaults: 'jobrunner, all defaults',
  goridge: 'jobrunner, goridge PHP no-op',
};

/** the results as a Markdown table (also readable in a terminal) */
export function formatTable(r: Results): string {
  const head = '| target | consumer | msg/s | vs raw | p50 ms | p99 ms | peak RSS MB | idle RSS MB | CPU s / 10k |';
  const sep = '|---|---|--:|--:|--:|--:|--:|--:|--:|';
  const lines = r.rows.map(
    (x) =>
      `| ${x.target} | ${LABEL[x.consumer] ?? x.consumer} | ${f0(x.rate)} | ${x.consumer === 'raw' ? '100%' : pct(x.ratio)} | ${f2(x.p50)} | ${f2(x.p99)} | ${f1(x.peakRssMb)} | ${f1(x.idleRssMb)} | ${f2(x.cpuPer10k)} |` +
      (x.leftover > 0 ? ` **${x.leftover} left in the queue**` : ''),
  );
  return [head, sep, ...lines].join('\n');
}

interface Verdict {
  target: string;
  met: boolean;
  detail: string;
}

export function verdicts(r: Results, rss: RssResults | undefined): Verdict[] {
  const out: Verdict[] = [];
  const rows = (c: string): Row[] => r.rows.filter((x) => x.consumer === c);
  const min = (xs: number[]): number => Math.min(...xs);
  const check = (target: string, c: string, limit: number): void => {
    const rs = rows(c);
    if (rs.length === 0) return;
    const worst = min(rs.map((x) => x.ratio));
    out.push({ target, met: worst >= limit, detail: rs.map((x) => `${x.target} ${pct(x.ratio)}`).join(', ') });
  };
  check('Node.js no-op ≥ 75% of raw', 'node', 0.75);
  check('Python no-op ≥ 60% of raw', 'python', 0.6);
  check('defaults ≥ 50% of raw', 'defaults', 0.5);
  const jr = r.rows.filter((x) => x.consumer !== 'raw' && Number.isFinite(x.p99));
  out.push({ target: 'p99 < 5 ms at 1,000 msg/s', met: jr.every((x) => x.p99 < 5), detail: `worst ${f2(Math.max(...jr.map((x) => x.p99)))} ms` });
  const idle = r.rows.filter((x) => x.consumer !== 'raw' && Number.isFinite(x.idleRssMb)).map((x) => x.idleRssMb);
  out.push({ target: 'idle daemon RSS < 60 MB', met: idle.length > 0 && idle.every((x) => x < 60), detail: `every daemon row: ${f1(Math.min(...idle))}-${f1(Math.max(...idle))} MB` });
  if (rss) {
    const g = rssGrowth(rss.samples);
    out.push({
      target: 'RSS flat (±10%) from 100k to 1M',
      met: Math.abs(g) <= 0.1,
      detail: `mean of the first three readings ${mean3(rss.samples.slice(0, 3)).toFixed(1)} MB → last three ${mean3(rss.samples.slice(-3)).toFixed(1)} MB (${(g * 100).toFixed(1)}%); single readings ${rss.samples[0]?.[1].toFixed(1)} → ${rss.samples.at(-1)?.[1].toFixed(1)} MB`,
    });
  }
  return out;
}

function mean3(samples: [number, number][]): number {
  return samples.reduce((a, [, mb]) => a + mb, 0) / Math.max(1, samples.length);
}

/**
 * Growth from 100k to 1M messages. One reading lands anywhere on the GC sawtooth (±5 MB here), so the
 * first three readings are compared with the last three.
 */
export function rssGrowth(samples: [number, number][]): number {
  return mean3(samples.slice(-3)) / mean3(samples.slice(0, 3)) - 1;
}

function load<T>(name: string): T | undefined {
  const file = join(ROOT, 'bench/results', name);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

/** regenerates the results part of docs/benchmarks.md between its markers */
export function writeDocs(): void {
  const r = load<Results>('latest.json');
  if (!r) return;
  const rss = load<RssResults>('rss.json');
  const file = join(ROOT, 'docs/benchmarks.md');
  const begin = '<!-- results:begin (generated by bench/run.ts from bench/results/*.json) -->';
  const end = '<!-- results:end -->';
  const t = r.tuned;
  const parts = [
    begin,
    `Measured ${r.when.slice(0, 16).replace('T', ' ')} UTC, N = ${r.n.toLocaleString('en-US')} messages per row, throughput, CPU, p50 and p99 are medians of ${r.runs} run(s), latency from ${r.latencyN.toLocaleString('en-US')} messages at 1,000/s in each run; the whole run took ${r.seconds} s.`,
    '',
    ...Object.entries(r.env).map(([k, v]) => `- ${k}: ${v}`),
    `- tuned rows (raw client at the same prefetch): prefetch ${t.prefetch}, num_workers ${t.numWorkers}, max_concurrency ${t.maxConcurrency}, multiple_ack ${t.multipleAck}`,
    '',
    formatTable(r),
    '',
    '| target | met | measured |',
    '|---|---|---|',
    ...verdicts(r, rss).map((v) => `| ${v.target} | ${v.met ? 'yes' : '**no**'} | ${v.detail} |`),
  ];
  if (rss) {
    parts.push('', `RSS growth (BENCH_RSS=1, ${rss.target}, ${rss.when.slice(0, 16).replace('T', ' ')} UTC): daemon RSS after each 100,000 messages:`, '');
    parts.push('| messages | ' + rss.samples.map(([n]) => `${n / 1000}k`).join(' | ') + ' |');
    parts.push('|---|' + rss.samples.map(() => '--:|').join(''));
    parts.push('| RSS MB | ' + rss.samples.map(([, mb]) => mb.toFixed(1)).join(' | ') + ' |');
  }
  parts.push(end);
  const block = parts.join('\n');
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : `# Benchmarks\n\n${begin}\n${end}\n`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  doc = a >= 0 && b > a ? doc.slice(0, a) + block + doc.slice(b + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, doc);
}
