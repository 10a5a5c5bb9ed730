// Test helper: runs one reference worker from examples/ as a real child process and talks protocol v1 to it
// directly (no daemon), so each example can be checked frame by frame. Every wait is bounded.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WAIT_MS = 10_000;

export interface WorkerLanguage {
  name: string;
  /** argv to start the worker, from the repository root */
  argv: () => string[];
  /** a reason to skip when the runtime is missing, or undefined when it is there */
  missing: () => string | undefined;
  /** node and python are always there in CI: their absence fails instead of skipping */
  requiredInCi: boolean;
  /** one-time preparation (Go: build the binary); returns a cleanup */
  prepare?: () => () => void;
}

function has(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

let goBinary: string | undefined;

export const languages: WorkerLanguage[] = [
  { name: 'node', argv: () => [process.execPath, 'examples/node/worker.mjs'], missing: () => undefined, requiredInCi: true },
  {
    name: 'python',
    argv: () => ['python3', 'examples/python/worker.py'],
    missing: () => (has('python3', ['--version']) ? undefined : 'python3 not installed'),
    requiredInCi: true,
  },
  {
    name: 'php',
    argv: () => ['php', 'examples/php/worker.php'],
    missing: () => (has('php', ['--version']) ? undefined : 'php not installed (scripts/install-example-runtimes.sh)'),
    requiredInCi: false,
  },
  {
    name: 'go',
    argv: () => {
      if (goBinary === undefined) throw new Error('go worker was not built');
      return [goBinary];
    },
    missing: () => (has('go', ['version']) ? undefined : 'go not installed (scripts/install-example-runtimes.sh)'),
    requiredInCi: false,
    prepare: () => {
      const dir = mkdtempSync(join(tmpdir(), 'jobrunner-go-worker-'));
      const out = join(dir, 'worker');
      // stdlib only: no module download, no toolchain download, so no network is needed
      const env = { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', GOPROXY: 'off' };
      const r = spawnSync('go', ['build', '-o', out, '.'], { cwd: join(repoRoot, 'examples/go'), env, encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`go build failed: ${r.stderr || r.error?.message}`);
      goBinary = out;
      return () => rmSync(dir, { recursive: true, force: true });
    },
  },
  {
    name: 'shell',
    argv: () => ['bash', 'examples/shell/worker.sh'],
    missing: () => (has('jq', ['--version']) ? undefined : 'jq not installed (scripts/install-example-runtimes.sh)'),
    requiredInCi: false,
  },
];

/** One running worker: write frames, wait for reply frames, stop it and get its exit code. */
export class WorkerSession {
  /** answer frames (everything but `ready`) */
  readonly frames: Record<string, unknown>[] = [];
  /** `ready` frames, and how many answer frames came before each */
  readonly readies: { frame: Record<string, unknown>; after: number }[] = [];
  readonly nonJsonLines: string[] = [];
  stderr = '';
  private readonly child: ChildProcess;
  private buffered = '';
  private readonly exited: Promise<number | null>;
  private wake: (() => void) | undefined;

  constructor(argv: string[], env: Record<string, string> = {}) {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('empty argv');
    this.child = spawn(cmd, args, {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        JOBRUNNER_PIPELINE: 'emails',
        JOBRUNNER_WORKER_ID: '1',
        JOBRUNNER_PROTOCOL: '1',
        JOBRUNNER_MAX_CONCURRENCY: '1',
        RR_MODE: 'jobs',
        ...env,
      },
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        try {
          const v: unknown = JSON.parse(line);
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
            const f = v as Record<string, unknown>;
            if (f['type'] === 'ready') this.readies.push({ frame: f, after: this.frames.length });
            else this.frames.push(f);
          }
          else this.nonJsonLines.push(line);
        } catch {
          this.nonJsonLines.push(line);
        }
      }
      this.wake?.();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.child.stdin!.on('error', () => {}); // a worker that already left: the exit code tells the story
    this.exited = new Promise((res) => this.child.on('close', (code) => { this.wake?.(); res(code); }));
  }

  send(...frames: object[]): void {
    this.child.stdin!.write(frames.map((f) => JSON.stringify(f) + '\n').join(''));
  }

  /** Waits until at least `count` reply frames arrived in total. */
  async waitFrames(count: number): Promise<Record<string, unknown>[]> {
    const until = Date.now() + WAIT_MS;
    while (this.frames.length < count) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`worker exited (${this.child.exitCode ?? this.child.signalCode}) after ${this.frames.length}/${count} frames; stderr: ${this.stderr}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${count} frames, got ${JSON.stringify(this.frames)}; stderr: ${this.stderr}`);
      await new Promise<void>((res) => {
        const timer = setTimeout(res, Math.min(left, 200));
        this.wake = () => { clearTimeout(timer); res(); };
      });
    }
    return this.frames.slice(0, count);
  }

  /** Sends `stop` while keeping stdin open (as the daemon does) and returns the exit code. */
  async stop(): Promise<number | null> {
    this.send({ type: 'stop' });
    return this.waitExit();
  }

  /** Waits for the process to exit; kills it and throws when it does not within the bound. */
  async waitExit(): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((res) => { timer = setTimeout(() => res('timeout'), WAIT_MS); });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.kill();
      throw new Error(`worker did not exit within ${WAIT_MS} ms; stderr: ${this.stderr}`);
    }
    return r;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    this.child.stdin!.destroy();
  }
}

let seq = 0;
/** A job frame shaped as SPEC §4 sends it. */
export function jobFrame(payload: unknown, over: Record<string, unknown> = {}): Record<string, unknown> & { id: string } {
  const id = `6f1c${(++seq).toString(16).padStart(4, '0')}-test`;
  return {
    type: 'job',
    id,
    job: 'SendEmail',
    pipeline: 'emails',
    payload,
    encoding: typeof payload === 'string' ? 'text' : 'json',
    headers: { tenant: ['acme'] },
    attempt: 1,
    deadline: new Date(Date.now() + 300_000).toISOString(),
    meta: { driver: 'memory', queue: 'emails', message_id: id, redelivered: false },
    ...over,
  };
}
