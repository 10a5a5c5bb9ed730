// The built CLI (dist/cli/main.js) as a child process, always asynchronous (its output recorded for the
// run's secret check): the test's event loop keeps
// running (its own fetches, broker connections and timers) while a command runs. `serve` binds its HTTP
// server to port 0 and the address is read from its "http server listening" log line.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './daemon.js';
import { recordOutput } from './output-log.js';

export const CLI = join(ROOT, 'dist/cli/main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `jobrunner ARGS...` to its end (killed after timeoutMs); JOBRUNNER_CONFIG is cleared unless given. */
export function runCli(args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, JOBRUNNER_CONFIG: '', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      recordOutput(stdout + stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Serve {
  child: ChildProcess;
  /** host:port the HTTP server listens on */
  address: string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** everything it wrote so far (stdout and stderr) */
  output(): string;
  /** SIGTERM, then SIGKILL after timeoutMs; resolves with the exit code */
  stop(timeoutMs?: number): Promise<number | null | 'killed'>;
}

/**
 * Starts `jobrunner serve -c FILE` (the file should set `http.address: "127.0.0.1:0"`, or pass
 * JOBRUNNER_HTTP_ADDRESS in env) and resolves once its HTTP server listens.
 */
export async function startServe(file: string, options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Serve> {
  const child = spawn(process.execPath, [CLI, 'serve', '-c', file], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, JOBRUNNER_CONFIG: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // everything it printed goes to the run's secret check (test/helpers/output-log.ts)
  child.once('exit', () => recordOutput(out));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not log its http address: ${out}`)), options.timeoutMs ?? 30_000);
    lines.on('line', (line) => {
      out += line + '\n';
      try {
        const l = JSON.parse(line) as { msg?: string; address?: string };
        if (l.msg === 'http server listening' && l.address) {
          clearTimeout(timer);
          resolve(l.address);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${String(code)}: ${out}`));
    });
  });
  return {
    child,
    address,
    exited,
    output: () => out,
    async stop(timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'killed'>((r) => (timer = setTimeout(() => r('killed'), timeoutMs)))]);
      clearTimeout(timer);
      if (code === 'killed') child.kill('SIGKILL');
      return code;
    },
  };
}
