// `npm run soak`: SOAK_MESSAGES jobs (default 1,000,000) through amqp091 on RabbitMQ 3.10 with the built
// CLI, 1% of them crashing their worker every time (retried, then dead-lettered after max_attempts). The
// other jobs publish themselves into a collector queue before their ack. Prints published, acked, lost
// (must be 0), duplicates, dead-lettered, throughput and the daemon's RSS at start and end; exits 1 when
// something was lost. Not a *.test.ts: CI does not run it.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'amqplib';
import { httpCall } from '../helpers/http.js';
import { Admin, brokerMajor, daemonYaml, freePort, sleep, spawnServe, within } from '../helpers/faults.js';

const N = Number(process.env['SOAK_MESSAGES'] ?? 1_000_000);
const CRASH_EVERY = 100; // 1%
const BATCH = 2000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function main(): Promise<number> {
  const urls = (process.env['AMQP091_URLS'] ?? 'amqp://guest:guest@127.0.0.1:5672').split(/\s+/).filter(Boolean);
  let url: string | undefined;
  for (const u of urls) if ((await brokerMajor(u).catch(() => 0)) === 3) url = u;
  url ??= urls[0] as string;
  const admin = await Admin.open(url);
  const q = Admin.prefix('soak');
  admin.track(q, `${q}-echo`, `${q}-dead`);
  for (let i = 0; i < 4; i++) admin.track(`jobrunner.delay.${q}.${100 * 2 ** i}`);
  await admin.queue(q);
  await admin.queue(`${q}-echo`);
  const dir = mkdtempSync(join(tmpdir(), 'jobrunner-soak-'));
  const port = await freePort();
  const file = join(dir, 'jobs.yaml');
  writeFileSync(
    file,
    daemonYaml({
      target: { driver: 'amqp091', url },
      http: `127.0.0.1:${port}`,
      level: process.env['SOAK_DEBUG'] ? 'info' : 'warn',
      pool: '{ num_workers: 8, max_concurrency: 1, destroy_timeout: 10s, allocate_timeout: 60s }',
      pipelines: [
        { name: 'work', queue: q, retry: '{ max_attempts: 3, backoff: { initial: 100ms, max: 1s, jitter: 0 } }', deadLetter: 'dead', config: 'prefetch: 64' },
        { name: 'echo', queue: `${q}-echo`, consume: false },
        { name: 'dead', queue: `${q}-dead`, consume: false },
      ],
    }).replace('prefetch: 10, durable: true, prefetch: 64', 'prefetch: 64, durable: true'),
  );

  // the collector: every acked job publishes itself here; consumed as we go
  const acked = new Set<string>();
  let ackCopies = 0;
  const cc = await connect(url);
  const cch = await cc.createChannel();
  await cch.prefetch(1000);
  await cch.consume(
    `${q}-echo`,
    (m) => {
      if (!m) return;
      ackCopies++;
      const n = (JSON.parse(m.content.toString('utf8')) as { n?: string }).n;
      if (n !== undefined) acked.add(n);
      cch.ack(m);
    },
    { noAck: false },
  );

  const daemon = spawnServe(file);
  let code = 0;
  try {
    await within(
      (async () => {
        for (;;) {
          const r = await httpCall('GET', `http://127.0.0.1:${port}/ready`).catch(() => undefined);
          if (r?.status === 200) return;
          if (daemon.child.exitCode !== null) throw new Error(`daemon exited: ${daemon.output()}`);
          await sleep(100);
        }
      })(),
      30_000,
      'daemon ready',
    );
    const pid = daemon.child.pid as number;
    const rssStart = rssMb(pid);
    const started = Date.now();
    const crashing = new Set<string>();
    let published = 0;
    const pub = await connect(url);
    const ch = await pub.createConfirmChannel();
    let lastReport = Date.now();
    while (published < N) {
      const n = Math.min(BATCH, N - published);
      for (let i = 0; i < n; i++) {
        const id = randomUUID();
        const crash = (published + i) % CRASH_EVERY === CRASH_EVERY - 1;
        if (crash) crashing.add(id);
        const payload = crash ? { action: 'crash', n: id } : { action: 'echo', n: id };
        ch.sendToQueue(q, Buffer.from(JSON.stringify(payload)), { messageId: id, persistent: true, contentType: 'application/json', headers: { rr_id: id, rr_job: 'Soak' } });
      }
      await ch.waitForConfirms();
      published += n;
      // keep the queue from growing without bound: publish at most ~20k ahead of the workers
      while (published - acked.size - 20_000 > 0) await sleep(50);
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        process.stdout.write(`soak: published ${published}, acked ${acked.size}, rss ${rssMb(pid)} MB\n`);
      }
    }
    await pub.close();
    const expectAcked = N - crashing.size;
    const deadline = Date.now() + 60_000 + N; // bounded: ~1 ms a message past the last publish
    while (acked.size < expectAcked && Date.now() < deadline) await sleep(100);
    const elapsed = (Date.now() - started) / 1000;
    // the tail: only crashing jobs are left, and each new worker dies on its first job, so the pool's
    // crash-loop backoff paces them (by design); give them a bounded while, then count what is queued
    const tailEnd = Math.min(deadline, Date.now() + 60_000);
    let dead = await admin.count(`${q}-dead`);
    while (dead < crashing.size && Date.now() < tailEnd) {
      await sleep(250);
      dead = await admin.count(`${q}-dead`);
    }
    const rssEnd = rssMb(pid);
    daemon.child.kill('SIGTERM');
    const exit = await within(daemon.exited, 30_000, 'daemon exit');
    const deadIds = new Set((await admin.drain(`${q}-dead`)).map((m) => m.id));
    const queued = await admin.count(q);
    await sleep(500); // last collector deliveries
    // every published id must be acked (collector), dead-lettered or still queued
    const lost = Math.max(0, N - new Set([...acked, ...deadIds]).size - queued);
    const duplicates = ackCopies - acked.size;
    const lines = [
      `soak: messages=${N} crashing=${crashing.size} (1%) driver=amqp091 broker=${new URL(url).host}`,
      `soak: published=${N} acked=${acked.size} dead_lettered=${deadIds.size} still_queued=${queued} lost=${lost} duplicates=${duplicates}`,
      `soak: throughput=${Math.round(acked.size / elapsed)} acked jobs/s (${elapsed.toFixed(1)} s from first publish to last ack)`,
      `soak: daemon rss start=${rssStart} MB end=${rssEnd} MB; exit=${exit.code}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (process.env['SOAK_DEBUG']) writeFileSync(process.env['SOAK_DEBUG'], daemon.output());
    if (lost > 0 || exit.code !== 0) code = 1;
  } finally {
    daemon.kill();
    await cc.close().catch(() => undefined);
    await admin.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
