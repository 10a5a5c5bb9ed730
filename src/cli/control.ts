// `jobrunner push`, `status`, `pause`, `resume`: talk to a running daemon's HTTP API, or (push on a
// broker pipeline without --address) publish straight through the pipeline's driver.

import type { Config } from '../config/types.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';
import { silentLogger } from '../observability/logger.js';
import { driverFor } from '../drivers/registry.js';
import type { PushRequest } from '../http/server.js';
import type { WorkerRow } from '../daemon/daemon.js';

async function api(address: string, method: 'GET' | 'POST', path: string, body?: unknown, token?: string): Promise<unknown> {
  const url = `http://${address}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err);
    throw new JobrunnerError('E_HTTP', `no jobrunner daemon answers at http://${address} (${cause}); is it running? (--address, or http.address in the config)`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  if (res.status === 401 || res.status === 403) {
    throw new JobrunnerError('E_HTTP', `${method} ${path}: ${res.status} invalid token: ${token ? 'the daemon refused the token given' : 'the daemon wants a token'} (--token, http.token of -c, or $JOBRUNNER_TOKEN)`);
  }
  if (!res.ok) {
    const msg = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? String((parsed as { error: unknown }).error) : text;
    throw new JobrunnerError('E_HTTP', `${method} ${path}: ${res.status} ${msg}`);
  }
  return parsed;
}

export type PayloadMode = 'auto' | 'json' | 'text';

/**
 * The payload as the worker will see it. auto: JSON when it parses, else the text as a string, except that
 * text that looks like JSON (starts with `{`, `[` or `"`) and does not parse is an error, not silently a
 * string. json: it must parse. text: always the string as given.
 */
export function parsePayload(text: string, mode: PayloadMode = 'auto'): unknown {
  if (mode === 'text') return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    const looksLikeJson = /^\s*[[{"]/.test(text);
    if (mode === 'json' || looksLikeJson) {
      const why = errorMessage(err);
      throw new JobrunnerError('E_USAGE', `the payload is not valid JSON (${why})${mode === 'json' ? '' : '; pass --text to send it as a string'}`);
    }
    return text;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseHeaders(list: string[]): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const h of list) {
    const i = h.indexOf('=');
    if (i <= 0) throw new JobrunnerError('E_USAGE', `--header ${JSON.stringify(h)}: expected k=v`);
    const k = h.slice(0, i);
    (headers[k] ??= []).push(h.slice(i + 1));
  }
  return headers;
}

/** `jobrunner push` options as commander parses them (src/cli/main.ts) */
export interface PushCliOptions {
  config?: string;
  header: string[];
  delay?: number;
  priority?: number;
  id?: string;
  address?: string;
  token?: string;
  timeout: number;
  json?: boolean;
  text?: boolean;
  jsonPayload?: boolean;
}

export async function runPush(opts: PushCliOptions & { pipeline: string; job: string; payload: string }, config: Config | undefined): Promise<void> {
  if (opts.text && opts.jsonPayload) throw new JobrunnerError('E_USAGE', '--text and --json-payload say different things: pass one');
  const payload = parsePayload(opts.payload === '-' ? await readStdin() : opts.payload, opts.text ? 'text' : opts.jsonPayload ? 'json' : 'auto');
  const req: PushRequest = {
    job: opts.job,
    payload,
    headers: parseHeaders(opts.header),
    ...(opts.delay === undefined ? {} : { delay: opts.delay }),
    ...(opts.priority === undefined ? {} : { priority: opts.priority }),
    ...(opts.id === undefined ? {} : { id: opts.id }),
  };
  let id: string;
  if (opts.address || !config) {
    id = await pushHttp(opts.address ?? '127.0.0.1:2114', opts.pipeline, req, opts.token ?? process.env['JOBRUNNER_TOKEN']);
  } else {
    const p = config.pipelines.find((x) => x.name === opts.pipeline);
    if (!p) throw new JobrunnerError('E_PIPELINE_UNKNOWN', `${config.file}: no pipeline named ${JSON.stringify(opts.pipeline)} (known: ${config.pipelines.map((x) => x.name).join(', ')})`);
    if (driverFor(p.driver).capabilities.inProcess) {
      // an in-process pipeline lives inside the daemon: push through its HTTP API
      id = await pushHttp(config.http.address, opts.pipeline, req, opts.token ?? config.http.token ?? process.env['JOBRUNNER_TOKEN']);
    } else {
      id = await pushDirect(config, p.name, req, opts.timeout);
    }
  }
  process.stdout.write(opts.json ? `${JSON.stringify({ id, pipeline: opts.pipeline })}\n` : `${id}\n`);
}

async function pushHttp(address: string, pipeline: string, req: PushRequest, token: string | undefined): Promise<string> {
  const res = (await api(address, 'POST', `/pipelines/${encodeURIComponent(pipeline)}/jobs`, req, token)) as { id: string };
  return res.id;
}

/** connects with the pipeline's driver, declares, publishes, waits for the confirm, disconnects */
async function pushDirect(config: Config, name: string, req: PushRequest, timeoutSeconds: number): Promise<string> {
  const { createConnection } = await import('../daemon/connections.js');
  const { pushedJob } = await import('../daemon/push.js');
  const p = config.pipelines.find((x) => x.name === name);
  if (!p) throw new JobrunnerError('E_PIPELINE_UNKNOWN', `no pipeline named ${name}`);
  const conn = await createConnection(p.driver, config, silentLogger());
  // a push is one attempt: once every address of the connection has answered with an error (refused,
  // wrong password, unknown host), waiting out --timeout would only hide that answer
  const section = driverFor(p.driver).section?.name;
  const addresses = (section ? (config.connections[section] as { urls?: unknown[] } | undefined)?.urls?.length : undefined) ?? 1;
  const gaveUp = new AbortController();
  let failures = 0;
  conn.on('status', () => {
    const s = conn.status();
    if (!s.connected && s.error !== undefined && ++failures >= addresses) gaveUp.abort();
  });
  const deadline = Date.now() + timeoutSeconds * 1000;
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutSeconds * 1000), gaveUp.signal]);
  try {
    await conn.start(signal);
    if (!conn.status().connected) {
      const within = gaveUp.signal.aborted ? '' : ` within ${timeoutSeconds}s`;
      throw new JobrunnerError('E_BROKER_CONNECT', `cannot reach the broker of pipeline ${name}${within}: ${conn.status().error ?? 'no answer'}`);
    }
    // --timeout bounds the whole push: connect, declare, publish and the broker's confirm
    const job = pushedJob(p, req);
    const publish = (async () => {
      const broker = conn.pipeline(p);
      await broker.declare();
      await broker.publish(job);
    })();
    // a timer of our own: a listener on AbortSignal.any() does not keep that signal alive
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const s = conn.status();
        const why = s.blocked !== undefined ? `the broker is blocking publishers: ${s.blocked}` : s.error !== undefined ? s.error : 'no confirm from the broker (is it blocking publishers? a resource alarm?)';
        reject(new JobrunnerError('E_PUBLISH', `push to pipeline ${name} did not complete within ${timeoutSeconds}s: ${why}`));
      }, Math.max(0, deadline - Date.now()));
    });
    publish.catch(() => undefined);
    try {
      await Promise.race([publish, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    return job.id;
  } finally {
    // a blocked broker may never answer the close either: give it a moment, then leave
    await Promise.race([conn.stop(), new Promise<void>((r) => setTimeout(r, 2000).unref())]);
  }
}

interface PipelineRow {
  pipeline: string;
  driver: string;
  queue: string;
  consuming: boolean;
  ready: number | null;
  active: number;
  delayed: number | null;
  workers: number;
  error: string | null;
}

export async function runStatus(opts: { address: string; json: boolean }): Promise<void> {
  const rows = (await api(opts.address, 'GET', '/pipelines')) as PipelineRow[];
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write(formatTable(rows));
}

export function formatTable(rows: PipelineRow[]): string {
  const head = ['PIPELINE', 'DRIVER', 'QUEUE', 'CONSUMING', 'READY', 'ACTIVE', 'DELAYED', 'WORKERS', 'ERROR'];
  const cells = rows.map((r) => [r.pipeline, r.driver, r.queue, r.consuming ? 'yes' : 'no', r.ready ?? '-', r.active, r.delayed ?? '-', r.workers, r.error ?? ''].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}

export async function runControl(verb: 'pause' | 'resume', opts: { pipeline: string; address: string; token?: string; json: boolean }): Promise<void> {
  const res = await api(opts.address, 'POST', `/pipelines/${encodeURIComponent(opts.pipeline)}/${verb}`, {}, opts.token);
  process.stdout.write(opts.json ? `${JSON.stringify(res)}\n` : `${opts.pipeline}: ${verb === 'pause' ? 'paused' : 'consuming'}\n`);
}

/** what the CLI reads of a GET /workers row */
type WorkerRowOut = Omit<WorkerRow, 'started'>;

export async function runWorkers(opts: { address: string; json: boolean; pipeline?: string }): Promise<void> {
  const query = opts.pipeline === undefined ? '' : `?pipeline=${encodeURIComponent(opts.pipeline)}`;
  const rows = (await api(opts.address, 'GET', `/workers${query}`)) as WorkerRowOut[];
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  process.stdout.write(formatWorkers(rows));
}

/** seconds, minutes, hours: what `rr workers` and ps show */
function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatWorkers(rows: WorkerRowOut[]): string {
  const head = ['PIPELINE', 'PID', 'STATE', 'HELD', 'HELD FOR', 'DONE', 'RSS', 'AGE', 'RESTARTS'];
  const cells = rows.map((r) =>
    [r.pipeline, r.pid, r.state, r.held, r.held > 0 ? duration(r.held_for_ms) : '-', r.done, r.rss === null ? '-' : `${(r.rss / 1048576).toFixed(1)} MB`, duration(r.age_ms), r.restarts].map(String),
  );
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n') + '\n';
}

export async function runReset(opts: { address: string; json: boolean; pipeline?: string; token?: string }): Promise<void> {
  const names = opts.pipeline !== undefined ? [opts.pipeline] : ((await api(opts.address, 'GET', '/pipelines')) as PipelineRow[]).map((p) => p.pipeline);
  const out: unknown[] = [];
  for (const name of names) out.push(await api(opts.address, 'POST', `/pipelines/${encodeURIComponent(name)}/reset`, {}, opts.token));
  process.stdout.write(opts.json ? `${JSON.stringify(out)}\n` : names.map((n) => `${n}: resetting (workers restart one at a time, each after its jobs are done)\n`).join(''));
}
