// Starts the Service Bus stand-in in a child process (servicebus-standin-child.ts) and asks it what it
// saw. A state() answer comes after everything the stand-in received before the request (one IPC
// channel, one event loop), so a publish the driver saw confirmed is in it.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
  const child: ChildProcess = fork(CHILD, [], { execArgv: ['--import', 'tsx'], serialization: 'advanced', env: { ...process.env, STANDIN_OPTS: JSON.stringify(opts) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const waiting = new Map<number, (m: { state?: StandinState }) => void>();
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the stand-in exited (${code}) before it was ready`)));
    child.on('message', (m: { type: string; id?: number; port?: number; state?: StandinState }) => {
      if (m.type === 'ready') resolve(m.port as number);
      else if (m.id !== undefined) {
        waiting.get(m.id)?.(m);
        waiting.delete(m.id);
      }
    });
  });
  const ask = (type: 'state' | 'close'): Promise<{ state?: StandinState }> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error('the stand-in process is gone'));
      const id = nextId++;
      waiting.set(id, resolve);
      child.send({ type, id });
    });
  return {
    port,
    url: (user, key) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(key)}@127.0.0.1:${port}`,
    state: async () => (await ask('state')).state as StandinState,
    queue: async (name) => {
      const q = (await ask('state')).state?.queues[name];
      if (q === undefined) throw new Error(`the stand-in has no queue ${name}`);
      return q;
    },
    async close() {
      if (child.connected) await ask('close').catch(() => undefined);
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        });
      }
    },
  };
}
