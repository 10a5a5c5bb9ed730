// BENCH_RSS=1: does the daemon's memory stay flat under a long run? One jobrunner (tuned, Node.js
// no-op worker, amqp091) takes BENCH_RSS_N messages (1,000,000) published as it goes (the queue kept
// between 5,000 and 25,000 deep); its RSS is read after every 100,000. Flat: within 10% of 100k.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker, body } from './lib/broker.js';
import { daemonConfig, freePort, ROOT, sleep, startDaemon, type Tuning } from './lib/consumers.js';
import { rssMb } from './lib/proc.js';
import { rssGrowth, writeDocs, type RssResults } from './lib/report.js';

export async function runRss(url: string, tuned: Tuning): Promise<void> {
  const total = Number(process.env.BENCH_RSS_N ?? 1_000_000);
  const step = Math.max(1, Math.floor(total / 10));
  const work = mkdtempSync(join(tmpdir(), 'jobrunner-bench-rss-'));
  const queue = `bench.rss.${process.pid}`;
  const broker = await Broker.open(url);
  const publisher = await Broker.open(url);
  await broker.declare(queue);
  const daemon = await startDaemon(work, daemonConfig('amqp091', url, queue, 'node', await freePort(), tuned), join(work, 'none'), join(work, 'daemon.log'));
  const samples: [number, number][] = [];
  let published = 0;
  let stop = false;
  // the publisher keeps the queue fed without letting it grow without bound
  const feeding = (async () => {
    const ch = (publisher as unknown as { pub: import('amqplib').ConfirmChannel }).pub;
    // prefetch more than total: the last `prefetch` are held by the daemon when the count reaches total
    const target = total + tuned.prefetch;
    while (!stop && published < target) {
      const { ready } = await broker.count(queue);
      if (ready > 25_000) {
        await sleep(20);
        continue;
      }
      const n = Math.min(5000, target - published);
      for (let i = 0; i < n; i++) ch.publish('', queue, body(published + i), { persistent: true, contentType: 'application/json', messageId: `r${published + i}` });
      published += n;
      await ch.waitForConfirms();
    }
  })();
  const started = Date.now();
  try {
    let next = step;
    while (next <= total) {
      const { ready } = await broker.count(queue);
      const done = published - ready - tuned.prefetch;
      if (done >= next) {
        const mb = rssMb(daemon.pid).rss;
        samples.push([next, mb]);
        console.log(`  ${next.toLocaleString('en-US')} messages: daemon RSS ${mb.toFixed(1)} MB`);
        next += step;
      }
      if (Date.now() - started > 20 * 60_000) throw new Error('BENCH_RSS took over 20 minutes');
      await sleep(50);
    }
  } finally {
    stop = true;
    await feeding.catch(() => undefined);
    await daemon.stop();
    await broker.delete(queue);
    await broker.close();
    await publisher.close();
    rmSync(work, { recursive: true, force: true });
  }
  const first = samples[0]?.[1] ?? NaN;
  const last = samples.at(-1)?.[1] ?? NaN;
  const results: RssResults = { when: new Date().toISOString(), target: `amqp091 / ${url.replace(/\/\/[^@]*@/, '//')}`, tuned, samples, growth: rssGrowth(samples) };
  console.log(`RSS ${first.toFixed(1)} MB at ${samples[0]?.[0]} → ${last.toFixed(1)} MB at ${samples.at(-1)?.[0]}; first three vs last three readings: ${(results.growth * 100).toFixed(1)}%`);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/rss.json'), JSON.stringify(results, null, 2) + '\n');
  writeDocs();
}
