// Starts the credit-controlled AMQP 1.0 peer (credit-peer-child.ts) in a child process and drives it:
// grant(n) gives every open sending link n credits, state() says what arrived. An answer comes after
// everything the peer received before the request (one IPC channel, one event loop).

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface CreditPeerState {
  /** message ids in order of arrival */
  received: string[];
  /** links the client attached to send on */
  attached: number;
}

export interface CreditPeer {
  readonly url: string;
  grant(n: number): Promise<void>;
  state(): Promise<CreditPeerState>;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./credit-peer-child.ts', import.meta.url));

export async function startCreditPeer(): Promise<CreditPeer> {
  const child: ChildProcess = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const waiting = new Map<number, (m: { state?: CreditPeerState }) => void>();
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the credit peer exited (${code}) before it was ready`)));
    child.on('message', (m: { type: string; id?: number; port?: number; state?: CreditPeerState }) => {
      if (m.type === 'ready') resolve(m.port as number);
      else if (m.id !== undefined) {
        waiting.get(m.id)?.(m);
        waiting.delete(m.id);
      }
    });
  });
  const ask = (type: 'grant' | 'state' | 'close', n?: number): Promise<{ state?: CreditPeerState }> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error('the credit peer process is gone'));
      const id = nextId++;
      waiting.set(id, resolve);
      child.send({ type, id, n });
    });
  return {
    url: `amqp://peer:peer@127.0.0.1:${port}`,
    grant: async (n) => void (await ask('grant', n)),
    state: async () => (await ask('state')).state as CreditPeerState,
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
