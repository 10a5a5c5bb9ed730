// The raw NATS JetStream consumer jobrunner's nats driver is compared with (`npm run bench`, target nats,
// row "raw"): @nats-io/jetstream, the same durable pull consumer with explicit acks, consume() with at
// most BENCH_PREFETCH messages asked for at once (the client's own refilling pull), each message acked at
// once, no work at all.
// Env: BENCH_URL, BENCH_STREAM, BENCH_CONSUMER, BENCH_PREFETCH; BENCH_LATENCY_DIR records (ack time -
// payload.ts) in ms. Runs until SIGTERM, then stops consuming and closes the connection.

import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { writeFileSync } from 'node:fs';

const { BENCH_URL: url, BENCH_STREAM: stream, BENCH_CONSUMER: name, BENCH_PREFETCH: prefetch = '100', BENCH_LATENCY_DIR: latencyDir } = process.env;
const samples = latencyDir ? [] : undefined;
const origin = performance.timeOrigin;

const nc = await connect({ servers: url });
const consumer = await jetstream(nc).consumers.get(stream, name);
const messages = await consumer.consume({ max_messages: Number(prefetch) });
const done = (async () => {
  for await (const m of messages) {
    m.ack();
    if (samples) {
      const ts = JSON.parse(Buffer.from(m.data).toString('utf8')).ts;
      if (typeof ts === 'number') samples.push((origin + performance.now() - ts).toFixed(3));
    }
  }
})();
process.send?.('ready');
process.once('SIGTERM', async () => {
  if (samples && samples.length > 0) writeFileSync(`${latencyDir}/raw-${process.pid}.txt`, samples.join('\n') + '\n');
  await messages.close().catch(() => undefined);
  await done.catch(() => undefined);
  await nc.drain().catch(() => undefined);
  process.exit(0);
});
