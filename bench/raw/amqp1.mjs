// The raw AMQP 1.0 consumer jobrunner is compared with (`npm run bench`, row "raw"): rhea, one
// receiver with a credit window of PREFETCH, manual settlement (accept) per message, no work at all.
// Env: BENCH_URL, BENCH_QUEUE (a RabbitMQ 4 queue, consumed at /queues/NAME), BENCH_PREFETCH;
// BENCH_LATENCY_DIR records (accept time - payload.ts) in ms. Runs until SIGTERM.

import rhea from 'rhea';
import { writeFileSync } from 'node:fs';

const { BENCH_URL: url, BENCH_QUEUE: queue, BENCH_PREFETCH: prefetch = '100', BENCH_LATENCY_DIR: latencyDir } = process.env;
const samples = latencyDir ? [] : undefined;
const origin = performance.timeOrigin;
const u = new URL(url);

const container = rhea.create_container({ id: `bench-raw-${process.pid}` });
const conn = container.connect({
  host: u.hostname,
  port: Number(u.port || 5672),
  username: decodeURIComponent(u.username),
  password: decodeURIComponent(u.password),
  hostname: `vhost:${decodeURIComponent(u.pathname.slice(1)) || '/'}`,
});
const receiver = conn.open_receiver({ source: { address: `/queues/${encodeURIComponent(queue)}` }, credit_window: Number(prefetch), autoaccept: false });
receiver.on('message', (ctx) => {
  ctx.delivery.accept();
  if (samples) {
    const body = ctx.message.body;
    const text = Buffer.isBuffer(body?.content) ? body.content.toString('utf8') : Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : JSON.stringify(body);
    const ts = JSON.parse(text).ts;
    if (typeof ts === 'number') samples.push((origin + performance.now() - ts).toFixed(3));
  }
});
receiver.once('receiver_open', () => process.send?.('ready'));
conn.on('connection_error', (ctx) => console.error('raw amqp1: connection error', ctx.connection.error));
receiver.on('receiver_error', (ctx) => console.error('raw amqp1: receiver error', ctx.receiver.error));
process.once('SIGTERM', () => {
  if (samples && samples.length > 0) writeFileSync(`${latencyDir}/raw-${process.pid}.txt`, samples.join('\n') + '\n');
  conn.close();
  setTimeout(() => process.exit(0), 200).unref();
  conn.once('connection_close', () => process.exit(0));
});
