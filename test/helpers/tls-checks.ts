// What every driver's TLS test checks the same way: a failed handshake seen from outside the daemon (one
// error line naming the cause, the same reason in /pipelines and /health, 503 after redial_timeout, still
// retrying), and the TLS examples of the docs (the YAML block after each `<!-- tls-example -->` marker),
// turned into settings for the throwaway CA and a private server.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT, httpJson, startDaemon, waitFor } from './daemon.js';
import { within } from './faults.js';

/** a connection section's `tls` as YAML keys */
export interface TlsKeys {
  root_ca?: string;
  cert?: string;
  key?: string;
  insecure_skip_verify?: boolean;
}

/**
 * Starts a daemon on `yaml` (its pipeline `work` with redial_timeout 2s, at debug level) whose connection
 * fails: one error line E_BROKER_CONNECT matching `cause` (no bare ECONNRESET, no password), the cause in
 * /pipelines and in /health's body once it answers 503, and the connect retried (debug lines).
 */
export async function expectTlsFailure(yaml: string, cause: RegExp): Promise<void> {
  const d = await startDaemon(yaml, { level: 'debug' });
  try {
    const errors = (): Array<{ msg: string }> => d.logs.filter((l) => l['code'] === 'E_BROKER_CONNECT');
    await waitFor('the failure logged', () => errors().length >= 1, 30_000);
    const first = d.logs.filter((l) => l.level === 'error' && l['code'] === 'E_BROKER_CONNECT');
    assert.equal(first.length, 1, 'one error line');
    assert.match(first[0]!.msg, cause, 'the error line names the cause');
    assert.doesNotMatch(first[0]!.msg, /ECONNRESET|guest:guest/);
    const pipes = await httpJson('GET', `${d.url}/pipelines`);
    const work = (pipes.body as Array<{ pipeline: string; error: string | null }>).find((p) => p.pipeline === 'work');
    assert.match(String(work?.error), cause, '/pipelines names the cause');
    // 503 once redial_timeout (2 s) has passed, with the reason in the body
    const health = await waitFor('/health 503', async () => {
      const h = await httpJson('GET', `${d.url}/health`);
      return h.status === 503 ? h : undefined;
    }, 20_000, 200);
    assert.match(JSON.stringify(health.body), cause, '/health names the cause');
    // still retrying (the later attempts log at debug)
    await waitFor('retried', () => errors().length >= 3, 30_000);
  } finally {
    await within(d.stop(), 30_000, 'daemon stop');
  }
}

export type DocExample = Record<string, { addr: string; tls: Record<string, unknown> }>;

/** The YAML block after each `<!-- tls-example -->` marker of a doc page, parsed. */
export function docTlsExamples(file: string): DocExample[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: DocExample[] = [];
  for (const part of text.split('<!-- tls-example -->').slice(1)) {
    const m = /```yaml\n([\s\S]*?)\n\s*```/.exec(part);
    assert.ok(m, `${file}: a yaml block after the tls-example marker`);
    const lines = m[1]!.split('\n');
    const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length));
    out.push(parseYaml(lines.map((l) => l.slice(indent)).join('\n')) as DocExample);
  }
  return out;
}

/** The docs' example paths (/etc/jobrunner/tls/ca.pem, client.pem, client.key) moved into the throwaway CA's folder. */
export function localTls(tls: Record<string, unknown>, certsDir: string): TlsKeys {
  return Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, typeof v === 'string' ? v.replace('/etc/jobrunner/tls/', `${certsDir}/`) : v])) as TlsKeys;
}
