// Starts the Service Bus stand-in in a child process (servicebus-standin-child.ts) and asks it what it
// saw. A state() answer comes after everything the stand-in received before the request (child-peer.ts),
// so a publish the driver saw confirmed is in it.

import { fileURLToPath } from 'node:url';
import { forkChildPeer } from './child-peer.js';

export interface StandinQueueState {
  ready: number;
  locked: number;
  completed: number;
  dead: { deadLetterReason?: string }[];
  scheduled: { scheduledEnqueueTime?: unknown }[];
}

export interface StandinState {
  /** SASL PLAIN credentials seen */
  logins: { user: string; password: string }[];
  renewals: number;
  /** settlements that arrived for a lock that had expired */
  lostLockSettlements: number;
  /** locks that expired (the message went back to the queue) */
  expiredLocks: number;
  queues: Record<string, StandinQueueState>;
}

export interface StandinProcess {
  readonly port: number;
  url(user: string, key: string): string;
  state(): Promise<StandinState>;
  /** the state of one queue */
  queue(name: string): Promise<StandinQueueState>;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./servicebus-standin-child.ts', import.meta.url));

export async function startServiceBusStandinProcess(opts: { user: string; key: string; queues: string[]; lockMs?: number }): Promise<StandinProcess> {
  // advanced serialization: Dates (scheduled enqueue times) cross as Dates
  const peer = await forkChildPeer<{ state?: StandinState }>(CHILD, 'the stand-in process', { serialization: 'advanced', env: { ...process.env, STANDIN_OPTS: JSON.stringify(opts) } });
  return {
    port: peer.port,
    url: (user, key) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(key)}@127.0.0.1:${peer.port}`,
    state: async () => (await peer.ask('state')).state as StandinState,
    queue: async (name) => {
      const q = (await peer.ask('state')).state?.queues[name];
      if (q === undefined) throw new Error(`the stand-in has no queue ${name}`);
      return q;
    },
    close: () => peer.close(),
  };
}
