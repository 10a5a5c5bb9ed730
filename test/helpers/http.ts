// The one way tests talk to a daemon's HTTP API. Every request opens its own connection (agent: false,
// `Connection: close`) instead of Node's fetch, which keeps idle sockets in a pool: the daemon closes an
// idle keep-alive socket after keepAliveTimeout, and a test process starved of CPU (a loaded machine)
// may not have processed that close before its next poll reuses the socket, which then fails with
// "other side closed" (UND_ERR_SOCKET) or ECONNRESET. A fresh connection per request cannot race that.

import { request as httpRequest } from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request on a connection of its own; rejects on a connection error or after timeoutMs. */
export function httpCall(method: string, url: string, options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  const { body, headers = {}, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        agent: false,
        headers: { ...headers, connection: 'close', ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** An HTTP call with a JSON body (parsed when the answer is JSON); `auth` is a bearer token or extra headers. */
export async function httpJson(method: string, url: string, body?: unknown, auth?: string | Record<string, string>): Promise<{ status: number; body: any }> {
  const extra = typeof auth === 'string' ? { authorization: `Bearer ${auth}` } : (auth ?? {});
  const res = await httpCall(method, url, {
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extra },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  let parsed: unknown = res.text;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    // text
  }
  return { status: res.status, body: parsed };
}
