// The raw NATS JetStream consumer jobrunner's nats driver is compared with (`npm run bench:nats`, row
// "raw"): @nats-io/jetstream, the same durable pull consumer with explicit acks, fetches of as many
// messages as free slots (at most BENCH_PREFETCH unacked), each message acked at once, no work at all.
// Env: BENCH_URL, BENCH_STREAM, BENCH_CONSUMER, BENCH_PREFETCH (10). Runs until SIGTERM.

import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

const { BENCH_URL: url, BENCH_STREAM: stream, BENCH_CONSUMER: name, BENCH_PREFETCH: prefetch = '10' } = process.env;
const nc = await connect({ servers: url });
const consumer = await jetstream(nc).consumers.get(stream, name);
let stopping = false;
const limit = Number(prefetch);

async function loop() {
  while (!stopping) {
    const iter = await consumer.fetch({ max_messages: limit, expires: 2000 });
    for await (const m of iter) m.ack();
  }
}
const done = loop();
process.send?.('ready');
process.once('SIGTERM', async () => {
  stopping = true;
  await done.catch(() => undefined);
  await nc.drain().catch(() => undefined);
  process.exit(0);
});
