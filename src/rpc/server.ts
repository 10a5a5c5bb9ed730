// RoadRunner's RPC server (`rpc.listen`, docs/rpc.md): goridge RPC over TCP or a unix socket, serving the
// jobs methods, so PHP code that pushes with Spiral\RoadRunner\Jobs\Jobs works unchanged. Loopback unless
// the file says `allow_unauthenticated: true` (goridge RPC has no authentication). Several calls may be in
// flight on one connection; each is answered with its own sequence number when it is done.

import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import type { Logger } from '../observability/logger.js';
import { FrameDecoder } from '../protocol/goridge/frame.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import { encodeError, encodeResponse, readRequest } from './frames.js';
import { callJobs, type RpcControl } from './jobs.js';

export interface RpcServerOptions {
  /** tcp://host:port or unix:///path */
  listen: string;
  allowUnauthenticated: boolean;
  control: RpcControl;
  logger: Logger;
}

export interface RpcServer {
  /** what workers get as RR_RPC: tcp://host:port as bound (port 0 picks one), or unix:///path */
  readonly address: string;
  close(): Promise<void>;
}

type Target = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** tcp://host:port or unix:///path, as RoadRunner writes rpc.listen; E_CONFIG_SCHEMA otherwise. */
export function parseListen(listen: string): Target {
  const unix = /^unix:\/\/(.+)$/.exec(listen);
  if (unix) return { kind: 'unix', path: unix[1] as string };
  const tcp = /^tcp:\/\/(?:\[([^\]]+)\]|([^:/]*)):(\d{1,5})$/.exec(listen);
  if (tcp && Number(tcp[3]) <= 65535) {
    const host = tcp[1] ?? tcp[2] ?? '';
    return { kind: 'tcp', host: host === '' ? '127.0.0.1' : host, port: Number(tcp[3]) };
  }
  throw new JobrunnerError('E_CONFIG_SCHEMA', `rpc.listen ${JSON.stringify(listen)} is not tcp://host:port or unix:///path`);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const { control, logger } = options;
  const target = parseListen(options.listen);
  if (target.kind === 'tcp' && !isLoopback(target.host) && !options.allowUnauthenticated) {
    throw new JobrunnerError(
      'E_RPC_LISTEN',
      `rpc.listen ${options.listen} is reachable from other hosts and goridge RPC has no authentication: listen on 127.0.0.1, or set rpc.allow_unauthenticated: true`,
    );
  }
  const sockets = new Set<Socket>();
  const server = createServer((socket) => serve(socket));

  function serve(socket: Socket): void {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', (err) => logger.debug({ err: errorMessage(err) }, 'rpc connection error'));
    const decoder = new FrameDecoder({
      frame: (frame) => {
        const read = readRequest(frame);
        if ('error' in read) {
          logger.warn({ code: 'E_RPC', err: read.error }, 'rpc: bad call');
          write(socket, encodeError(read.seq, '', `E_RPC: ${read.error}`));
          return;
        }
        const { request } = read;
        callJobs(control, request.method, request.codec, request.body).then(
          (body) => write(socket, encodeResponse(request.seq, request.method, request.flags, body)),
          (err: unknown) => {
            const code = err instanceof JobrunnerError ? err.code : 'E_INTERNAL';
            const message = errorMessage(err);
            logger.warn({ code, method: request.method, err: message }, 'rpc call failed');
            write(socket, encodeError(request.seq, request.method, `${code}: ${message}`));
          },
        );
      },
      error: (message) => {
        // the byte stream cannot be trusted past a bad frame: say why and close this connection only
        logger.warn({ code: 'E_RPC', err: message }, 'rpc: the connection sent bytes that are not goridge frames; closing it');
        write(socket, encodeError(0, '', `E_RPC: ${message}`));
        socket.end();
      },
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  }

  if (target.kind === 'unix') rmSync(target.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(new JobrunnerError('E_RPC_LISTEN', `the RPC server cannot listen on ${options.listen}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : errorMessage(err)}`, { cause: err }));
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (target.kind === 'unix') server.listen(target.path, done);
    else server.listen(target.port, target.host, done);
  });
  server.on('error', (err) => logger.error({ code: 'E_RPC', err: errorMessage(err) }, 'rpc server error'));
  return { address: boundAddress(server, target), close: () => close(server, sockets, target) };
}

function write(socket: Socket, bytes: Buffer): void {
  if (!socket.destroyed && socket.writable) socket.write(bytes);
}

function boundAddress(server: Server, target: Target): string {
  if (target.kind === 'unix') return `unix://${target.path}`;
  const a = server.address();
  const port = a !== null && typeof a === 'object' ? a.port : target.port;
  return `tcp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${port}`;
}

async function close(server: Server, sockets: Set<Socket>, target: Target): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of sockets) s.end();
  // a client that keeps its connection open does not hold the daemon's shutdown up
  const timer = setTimeout(() => sockets.forEach((s) => s.destroy()), 1000);
  await closed;
  clearTimeout(timer);
  if (target.kind === 'unix') rmSync(target.path, { force: true });
}
