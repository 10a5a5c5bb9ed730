// The raw AMQP 0-9-1 consumer jobrunner is compared with (`npm run bench`, row "raw"): amqplib, one
// channel, basic.qos PREFETCH, manual acks, one basic.ack per message, no work at all.
// Env: BENCH_URL, BENCH_QUEUE, BENCH_PREFETCH; BENCH_LATENCY_DIR records (ack time - payload.ts) in ms.
// Runs until SIGTERM, then closes the connection (unacked messages go back) and exits.

import amqplib from 'amqplib';
import { writeFileSync } from 'node:fs';

const { BENCH_URL: url, BENCH_QUEUE: queue, BENCH_PREFETCH: prefetch = '100', BENCH_LATENCY_DIR: latencyDir } = process.env;
const samples = latencyDir ? [] : undefined;
const origin = performance.timeOrigin;

const conn = await amqplib.connect(url);
const ch = await conn.createChannel();
await ch.prefetch(Number(prefetch), false);
await ch.consume(
  queue,
  (msg) => {
    if (msg === null) return;
    ch.ack(msg);
    if (samples) {
      const ts = JSON.parse(msg.content.toString('utf8')).ts;
      if (typeof ts === 'number') samples.push((origin + performance.now() - ts).toFixed(3));
    }
  },
  { noAck: false },
);
process.send?.('ready');
process.once('SIGTERM', async () => {
  if (samples && samples.length > 0) writeFileSync(`${latencyDir}/raw-${process.pid}.txt`, samples.join('\n') + '\n');
  await conn.close().catch(() => undefined);
  process.exit(0);
});
