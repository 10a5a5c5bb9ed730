// A test peer (a broker stand-in) in a child process, driven over the IPC channel: the child sends
// {type:'ready', port} once it listens, then answers each request {type, id, ...} with {id, ...}. An
// answer comes after everything the child received before the request (one IPC channel, one event
// loop), so what the client under test saw confirmed is in it. Used by credit-peer.ts and
// servicebus-standin-process.ts.

import { fork, type ForkOptions } from 'node:child_process';

export interface ChildPeer<A> {
  readonly port: number;
  /** sends {type, id, ...extra}; resolves with the child's answer */
  ask(type: string, extra?: Record<string, unknown>): Promise<A>;
  /** asks the child to close, then waits for its exit (SIGKILL after 5 s) */
  close(): Promise<void>;
}

/** forks `childFile` (TypeScript, run through tsx) and waits for its ready message; `what` names it in errors */
export async function forkChildPeer<A>(childFile: string, what: string, options: Pick<ForkOptions, 'env' | 'serialization'> = {}): Promise<ChildPeer<A>> {
  const child = fork(childFile, [], { ...options, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const waiting = new Map<number, (m: A) => void>();
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
    child.on('message', (m: { type?: string; id?: number; port?: number }) => {
      if (m.type === 'ready') resolve(m.port as number);
      else if (m.id !== undefined) {
        waiting.get(m.id)?.(m as A);
        waiting.delete(m.id);
      }
    });
  });
  const ask = (type: string, extra: Record<string, unknown> = {}): Promise<A> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error(`${what} is gone`));
      const id = nextId++;
      waiting.set(id, resolve);
      child.send({ ...extra, type, id });
    });
  return {
    port,
    ask,
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
