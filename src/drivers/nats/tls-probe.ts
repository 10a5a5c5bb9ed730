// Why a first connect over TLS timed out. A server that refuses the client's certificate (or its absence:
// nats-server --tlsverify) says so with a TLS alert after the client's side of the handshake is done (TLS
// 1.3); the NATS client, which reconnects, then waits for its PONG until its connect timeout and reports
// only "timeout". This probe takes the same steps by hand (the server's INFO in plain text, the handshake
// with the same TLS options, CONNECT and PING) and returns the error the socket got, for tlsFailure() to
// name; undefined when the server answered or said nothing about TLS.

import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { tlsServername } from '../tls.js';

const CONNECT = 'CONNECT {"verbose":false,"pedantic":false,"tls_required":true,"lang":"jobrunner-tls-probe","version":"1","protocol":1}\r\nPING\r\n';

export function probeTls(host: string, port: number, tls: ConnectionOptions, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve) => {
    let done = false;
    const sockets: Socket[] = [];
    const finish = (err: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const tcp = tcpConnect(port, host);
    sockets.push(tcp);
    tcp.on('error', () => finish(undefined));
    let info = '';
    const onInfo = (chunk: Buffer): void => {
      info += chunk.toString('latin1');
      if (!info.includes('\r\n')) return;
      tcp.off('data', onInfo);
      if (!info.startsWith('INFO ')) return finish(undefined);
      const servername = tlsServername(host);
      const secure = tlsConnect({ ...tls, socket: tcp, ...(servername ? { servername } : {}) }, () => secure.write(CONNECT));
      sockets.push(secure);
      secure.on('error', (err) => finish(err));
      secure.on('data', (c: Buffer) => {
        if (/PONG|-ERR/.test(c.toString('latin1'))) finish(undefined);
      });
      secure.on('close', () => finish(undefined));
    };
    tcp.on('data', onInfo);
  });
}
