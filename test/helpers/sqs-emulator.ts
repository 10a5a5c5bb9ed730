// An SQS emulator for tests: fauxqs (an in-memory SQS-compatible server: visibility, redrive, FIFO,
// batches, attributes) listening on 127.0.0.1 on a port of the OS's choosing, in the test's own process.
// A daemon under test (a child process) reaches it over loopback at `endpoint`. It is not AWS: every
// test that uses it says so in its title ("SQS emulator, not AWS").

import { buildApp } from 'fauxqs';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';

export const EMULATOR = 'SQS emulator, not AWS';
export const ACCOUNT = '000000000000';
export const REGION = 'us-east-1';

export interface SqsEmulator {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly port: number;
  /** a client for test setup and checks (any credentials are accepted) */
  readonly client: SQSClient;
  /** the `sqs` section a jobrunner config or connection needs to reach it */
  readonly settings: { key: string; secret: string; region: string; endpoint: string };
  arn(queue: string): string;
  /** creates a queue for a test (tracked for cleanup); returns its URL */
  createQueue(name: string, attributes?: Record<string, string>): Promise<string>;
  /** receives what is visible in a queue now (without settling it) */
  receive(queue: string, max?: number, waitS?: number): Promise<Message[]>;
  attributes(queue: string): Promise<Record<string, string>>;
  /** deletes a queue (tracked for cleanup) */
  track(name: string): void;
  /** deletes every tracked queue; never throws */
  cleanup(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSqsEmulator(): Promise<SqsEmulator> {
  const app = buildApp({ logger: false, host: '127.0.0.1' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the SQS emulator has no TCP address');
  const port = addr.port;
  const endpoint = `http://127.0.0.1:${port}`;
  const settings = { key: 'test', secret: 'test', region: REGION, endpoint };
  const client = new SQSClient({ endpoint, region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const tracked = new Set<string>();
  const urls = new Map<string, string>();
  const urlOf = async (queue: string): Promise<string> => {
    const known = urls.get(queue);
    if (known !== undefined) return known;
    const out = await client.send(new GetQueueUrlCommand({ QueueName: queue }));
    urls.set(queue, out.QueueUrl as string);
    return out.QueueUrl as string;
  };
  return {
    endpoint,
    port,
    client,
    settings,
    arn: (queue) => `arn:aws:sqs:${REGION}:${ACCOUNT}:${queue}`,
    async createQueue(name, attributes) {
      const out = await client.send(new CreateQueueCommand({ QueueName: name, ...(attributes ? { Attributes: attributes } : {}) }));
      tracked.add(name);
      urls.set(name, out.QueueUrl as string);
      return out.QueueUrl as string;
    },
    async receive(queue, max = 10, waitS = 0) {
      const out = await client.send(
        new ReceiveMessageCommand({ QueueUrl: await urlOf(queue), MaxNumberOfMessages: max, WaitTimeSeconds: waitS, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }),
      );
      return out.Messages ?? [];
    },
    async attributes(queue) {
      const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: await urlOf(queue), AttributeNames: ['All'] }));
      return out.Attributes ?? {};
    },
    track(name) {
      tracked.add(name);
    },
    async cleanup() {
      for (const name of tracked) {
        try {
          await client.send(new DeleteQueueCommand({ QueueUrl: await urlOf(name) }));
        } catch {
          // already gone
        }
        urls.delete(name);
      }
      tracked.clear();
    },
    async stop() {
      client.destroy();
      await app.close();
    },
  };
}
