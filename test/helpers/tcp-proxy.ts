// A small TCP proxy on 127.0.0.1 for fault tests: a client connects to the proxy, which forwards to the
// broker. cut() destroys every open connection (a network reset), down() also refuses new ones until
// restore(), blackhole() keeps sockets open but drops every byte both ways (a silent partition),
// slow(ms) delays each chunk. close() ends it all; it leaves nothing behind.

import net from 'node:net';

export interface TcpProxy {
  /** the local port the proxy listens on */
  readonly port: number;
  /** the URL with its host:port replaced by the proxy's (user, password, vhost, query kept) */
  url(target: string): string;
  /** destroys every open connection; new connections are accepted */
  cut(): void;
  /** destroys every open connection and refuses new ones until restore() */
  down(): void;
  /** keeps connections open but drops every byte in both directions, until restore() */
  blackhole(): void;
  /** delays every chunk by ms (in order), until restore() */
  slow(ms: number): void;
  /** back to plain forwarding */
  restore(): void;
  /** sees every forwarded chunk: 'up' client to broker, 'down' broker to client (undefined: stop) */
  tap(fn: ((direction: 'up' | 'down', chunk: Buffer) => void) | undefined): void;
  /** connections opened through the proxy so far */
  readonly connections: number;
  /** connections currently open */
  readonly open: number;
  close(): Promise<void>;
}

type Mode = { kind: 'pass' } | { kind: 'down' } | { kind: 'blackhole' } | { kind: 'slow'; ms: number };

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: Mode = { kind: 'pass' };
  let connections = 0;
  let tapFn: ((direction: 'up' | 'down', chunk: Buffer) => void) | undefined;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const timers = new Set<NodeJS.Timeout>();

  function forward(from: net.Socket, to: net.Socket, direction: 'up' | 'down'): void {
    // a per-direction queue keeps chunks in order while slow
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      const m = mode;
      if (m.kind === 'blackhole' || m.kind === 'down') return;
      tapFn?.(direction, chunk);
      if (m.kind === 'slow') {
        chain = chain.then(
          () =>
            new Promise<void>((resolve) => {
              const t = setTimeout(() => {
                timers.delete(t);
                if (!to.destroyed) to.write(chunk);
                resolve();
              }, m.ms);
              timers.add(t);
            }),
        );
        return;
      }
      chain = chain.then(() => {
        if (!to.destroyed) to.write(chunk);
      });
    });
  }

  const server = net.createServer((client) => {
    if (mode.kind === 'down') {
      client.destroy();
      return;
    }
    connections++;
    const upstream = net.connect(targetPort, targetHost);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    forward(client, upstream, 'up');
    forward(upstream, client, 'down');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp-proxy: no port');
  const port = address.port;

  function destroyAll(): void {
    for (const p of pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    pairs.clear();
  }

  return {
    port,
    url(target: string): string {
      const u = new URL(target);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut: destroyAll,
    down(): void {
      mode = { kind: 'down' };
      destroyAll();
    },
    blackhole(): void {
      mode = { kind: 'blackhole' };
    },
    slow(ms: number): void {
      mode = { kind: 'slow', ms };
    },
    restore(): void {
      mode = { kind: 'pass' };
    },
    tap(fn) {
      tapFn = fn;
    },
    get connections() {
      return connections;
    },
    get open() {
      return pairs.size;
    },
    async close(): Promise<void> {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
