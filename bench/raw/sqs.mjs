// The raw SQS consumer jobrunner's sqs driver is compared with (`npm run bench:sqs`, row "raw"):
// @aws-sdk/client-sqs, POLLS concurrent long polls of up to 10 messages each, every batch deleted with
// one DeleteMessageBatch, no work at all. Env: BENCH_ENDPOINT, BENCH_QUEUE, BENCH_POLLS (10).
// Runs until SIGTERM.

import { DeleteMessageBatchCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';

const { BENCH_ENDPOINT: endpoint, BENCH_QUEUE: queue, BENCH_POLLS: polls = '10' } = process.env;
const client = new SQSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
const { QueueUrl } = await client.send(new GetQueueUrlCommand({ QueueName: queue }));
let stopping = false;

async function loop() {
  while (!stopping) {
    const out = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }));
    const msgs = out.Messages ?? [];
    if (msgs.length > 0) await client.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
  }
}
const loops = Array.from({ length: Number(polls) }, () => loop());
process.send?.('ready');
process.once('SIGTERM', async () => {
  stopping = true;
  await Promise.allSettled(loops);
  client.destroy();
  process.exit(0);
});
