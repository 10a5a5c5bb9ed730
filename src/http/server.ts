// The HTTP server (SPEC §7): health, readiness, metrics, pipelines, pause/resume and push. It sees the
// daemon only through the Control interface. Loopback by default; with a token, every mutating
// endpoint needs `Authorization: Bearer <token>`.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import type { Encoding } from '../protocol/payload.js';

export interface PushRequest {
  job: string;
  payload?: unknown;
  /** how payload becomes the body: json (default), text, base64 */
  encoding?: Encoding;
  headers?: Record<string, string[]>;
  /** seconds */
  delay?: number;
  priority?: number;
  id?: string;
  /** W3C trace context of the caller (the `traceparent` request header): the push joins its trace */
  traceparent?: string;
}

export interface HealthReport {
  ok: boolean;
  pipelines: Record<string, { healthy: boolean; connected: boolean; consuming: boolean; workers: number; error?: string | undefined; crash_loop?: number }>;
}

export interface Control {
  health(): HealthReport;
  readiness(): HealthReport;
  metricsText(): Promise<string>;
  readonly metricsContentType: string;
  listPipelines(): Promise<unknown[]>;
  pause(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  /** every worker process, of one pipeline or of all */
  listWorkers(pipeline?: string): Promise<unknown[]>;
  /** starts a graceful restart of a pipeline's workers (one at a time, nothing lost); resolves once begun */
  reset(name: string): Promise<void>;
  push(name: string, req: PushRequest): Promise<string>;
}

export interface HttpServer {
  /** host:port actually bound (port 0 in the config picks a free one) */
  address: string;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024 * 1024;

export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address.trim());
  if (!m) throw new JobrunnerError('E_CONFIG_SCHEMA', `http.address ${JSON.stringify(address)} is not host:port`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port: Number(m[3]) };
}

export async function startHttpServer(options: { address: string; token?: string | undefined; control: Control; logger: Logger }): Promise<HttpServer> {
  const { control, logger } = options;
  const token = options.token ? Buffer.from(options.token) : undefined;
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = statusOf(err);
      if (status >= 500) logger.error({ url: req.url, err: errorMessage(err) }, 'http request failed');
      send(res, status, { error: errorMessage(err), code: err instanceof JobrunnerError ? err.code : 'E_INTERNAL' });
    });
  });
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      switch (path) {
        case '/health': {
          const h = control.health();
          return send(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'unhealthy', pipelines: h.pipelines });
        }
        case '/ready': {
          const r = control.readiness();
          return send(res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not ready', pipelines: r.pipelines });
        }
        case '/metrics': {
          const text = await control.metricsText();
          res.writeHead(200, { 'content-type': control.metricsContentType });
          res.end(text);
          return;
        }
        case '/pipelines':
          return send(res, 200, await control.listPipelines());
        case '/workers': {
          const pipeline = url.searchParams.get('pipeline');
          return send(res, 200, await control.listWorkers(pipeline ?? undefined));
        }
        default:
          return send(res, 404, { error: `no such endpoint: GET ${path}`, code: 'E_HTTP' });
      }
    }
    const m = /^\/pipelines\/([^/]+)\/(pause|resume|reset|jobs)$/.exec(path);
    if (method !== 'POST' || !m) {
      return send(res, method === 'POST' ? 404 : 405, { error: `no such endpoint: ${method} ${path}`, code: 'E_HTTP' });
    }
    if (token && !authorized(req, token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, { error: 'a bearer token is required (http.token)', code: 'E_HTTP' });
    }
    const name = pipelineName(m[1] as string);
    switch (m[2]) {
      case 'pause':
        await control.pause(name);
        return send(res, 200, { pipeline: name, consuming: false });
      case 'resume':
        await control.resume(name);
        return send(res, 200, { pipeline: name, consuming: true });
      case 'reset':
        await control.reset(name);
        return send(res, 202, { pipeline: name, resetting: true });
      default: {
        const body = await readJson(req);
        const push = toPushRequest(body);
        const tp = req.headers['traceparent'];
        if (typeof tp === 'string' && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp.trim())) push.traceparent = tp.trim();
        const id = await control.push(name, push);
        return send(res, 202, { id, pipeline: name });
      }
    }
  }

  const { host, port } = splitAddress(options.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new JobrunnerError('E_HTTP', `cannot listen on ${options.address}: ${errorMessage(err)}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const address = bound && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : options.address;
  let closing: Promise<void> | undefined;
  return {
    address,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

function authorized(req: IncomingMessage, token: Buffer): boolean {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) return false;
  const given = Buffer.from(m[1] as string);
  return given.length === token.length && timingSafeEqual(given, token);
}

function statusOf(err: unknown): number {
  if (!(err instanceof JobrunnerError)) return 500;
  switch (err.code) {
    case 'E_PIPELINE_UNKNOWN':
      return 404;
    case 'E_USAGE':
    case 'E_UNPUBLISHABLE':
      // a value the broker cannot carry is the client's mistake
      return 400;
    case 'E_SHUTDOWN':
      return 503;
    case 'E_PUBLISH':
    case 'E_BROKER_CLOSED':
    case 'E_BROKER_CONNECT':
      return 502;
    default:
      return 500;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new JobrunnerError('E_USAGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new JobrunnerError('E_USAGE', `request body is not JSON: ${errorMessage(err)}`);
  }
}

/** the NAME of /pipelines/NAME/...: bad percent-encoding is the client's mistake (400), not ours */
function pipelineName(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new JobrunnerError('E_USAGE', `the pipeline name in the path is not valid percent-encoding: ${JSON.stringify(segment.slice(0, 100))}`);
  }
}

/** what every broker carries (rr_delay is int32 seconds, rr_priority an int64 read as a JS number, message_id 255 bytes) */
const MAX_DELAY_SECONDS = 2 ** 31 - 1;
const MAX_ID_BYTES = 255;
const MAX_JOB_NAME_BYTES = 4096;
/** as MAX_HEADERS_BYTES in drivers/wire.ts: beyond it a copy's headers would be dropped (retries, dead letters) */
const MAX_HEADERS_BYTES = 32 * 1024;

function toPushRequest(body: unknown): PushRequest {
  const bad = (msg: string): never => {
    throw new JobrunnerError('E_USAGE', `push: ${msg}`);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('the body must be a JSON object {job, payload, headers?, delay?, priority?, id?}');
  const b = body as Record<string, unknown>;
  if (typeof b['job'] !== 'string' || b['job'] === '') return bad('`job` must be a non-empty string');
  if (Buffer.byteLength(b['job']) > MAX_JOB_NAME_BYTES) return bad(`\`job\` must be at most ${MAX_JOB_NAME_BYTES} bytes`);
  const req: PushRequest = { job: b['job'], payload: b['payload'] };
  if (b['encoding'] !== undefined) {
    if (b['encoding'] !== 'json' && b['encoding'] !== 'text' && b['encoding'] !== 'base64') return bad('`encoding` must be json, text or base64');
    req.encoding = b['encoding'];
  }
  if (b['headers'] !== undefined) {
    const h = b['headers'];
    if (typeof h !== 'object' || h === null || Array.isArray(h)) return bad('`headers` must be an object of string arrays');
    const headers: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
      if (typeof v === 'string') headers[k] = [v];
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) headers[k] = v as string[];
      else return bad(`header ${JSON.stringify(k)} must be a string or an array of strings`);
    }
    if (Buffer.byteLength(JSON.stringify(headers)) > MAX_HEADERS_BYTES) return bad(`\`headers\` must be at most ${MAX_HEADERS_BYTES} bytes as JSON`);
    req.headers = headers;
  }
  if (b['delay'] !== undefined) {
    if (typeof b['delay'] !== 'number' || !(b['delay'] >= 0) || b['delay'] > MAX_DELAY_SECONDS) return bad(`\`delay\` must be a number of seconds from 0 to ${MAX_DELAY_SECONDS}`);
    req.delay = b['delay'];
  }
  if (b['priority'] !== undefined) {
    if (typeof b['priority'] !== 'number' || !Number.isSafeInteger(b['priority'])) return bad('`priority` must be an integer within ±(2^53 - 1)');
    req.priority = b['priority'];
  }
  if (b['id'] !== undefined) {
    if (typeof b['id'] !== 'string' || b['id'] === '') return bad('`id` must be a non-empty string');
    if (Buffer.byteLength(b['id']) > MAX_ID_BYTES) return bad(`\`id\` must be at most ${MAX_ID_BYTES} bytes (a message id is a short string)`);
    req.id = b['id'];
  }
  return req;
}
