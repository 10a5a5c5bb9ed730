// One worker process: spawn, stdio transport (line splitting, batched writes with backpressure), signals.
// It knows nothing of jobs' outcomes: the pool (pool.ts) decides; this file reports through WorkerHooks.
// Each worker runs in its own process group (detached) so a signal reaches a `sh -c` wrapper's child too.

import { spawn, type ChildProcess } from 'node:child_process';
import type { JobFrame } from '../protocol/frames.js';
import { LineSplitter } from '../protocol/codec.js';
import type { JobCallbacks, JobOutcome, WorkerExitReason } from './types.js';

/** A job the pool holds: queued, then on a worker until settled. */
export interface PendingJob {
  /** the job id (frame.id), kept after the frame is let go */
  readonly id: string;
  /** the frame until it is written: dropped then, so a running job does not keep its payload alive (issue 7) */
  frame: JobFrame | undefined;
  callbacks: JobCallbacks;
  resolve: (outcome: JobOutcome) => void;
  /** ms epoch when run() was called (allocate_timeout) */
  queuedAt: number;
  /** ms epoch after which exec_ttl kills the worker; 0: none */
  deadline: number;
  worker: WorkerProcess | undefined;
  settled: boolean;
}

export interface WorkerHooks {
  onSpawn(w: WorkerProcess): void;
  onSpawnError(w: WorkerProcess, err: Error): void;
  onStdoutLine(w: WorkerProcess, line: string): void;
  onStdoutOverflow(w: WorkerProcess, bytes: number): void;
  onStderrLine(w: WorkerProcess, line: string): void;
  /** stdin can take more frames again */
  onDrain(w: WorkerProcess): void;
  /** the process is gone and its stdio closed (called once) */
  onClose(w: WorkerProcess, code: number | null, signal: string | null): void;
}

/** Frames buffered on one stdin beyond this stop new jobs going to that worker until it drains. */
const WRITE_BUFFER_LIMIT = 1024 * 1024;
/** stderr lines longer than this are not logged */
const STDERR_MAX_LINE = 64 * 1024;
/** after 'exit', how long to wait for the stdio to close (a grandchild may hold it) */
const CLOSE_AFTER_EXIT_MS = 2000;

export class WorkerProcess {
  readonly workerId: number;
  pid = 0;
  state: 'starting' | 'ready' | 'stopping' = 'starting';
  readonly jobs = new Map<string, PendingJob>();
  /** jobs handed to it (max_jobs) */
  dispatched = 0;
  /** answered at least one job with a valid frame */
  answered = false;
  /** false while stdin holds more than WRITE_BUFFER_LIMIT */
  writable = true;
  readonly startedAt = Date.now();
  /** set when the pool decided the worker's end (kill, stop, max_jobs) */
  exitReason: WorkerExitReason | undefined;
  /** SIGKILLed by the pool: its output is ignored from then on */
  killed = false;
  /** the pool has counted this death for the crash loop */
  deathNoted = false;
  spawnError: Error | undefined;
  closed = false;
  /** resolves once the process is gone (onClose has run) */
  readonly whenClosed: Promise<void>;
  /** resolves true once spawned, false when the spawn failed */
  readonly whenSpawned: Promise<boolean>;
  /** the pool's per-worker timer (retiring a max_jobs worker), cleared on close */
  retireTimer: NodeJS.Timeout | undefined;

  private proc: ChildProcess | undefined;
  /** frames queued in this tick */
  private out = '';
  private closeTimer: NodeJS.Timeout | undefined;
  private resolveClosed!: () => void;
  private resolveSpawned!: (ok: boolean) => void;
  private readonly hooks: WorkerHooks;
  private readonly flush = (): void => {
    const out = this.out;
    this.out = '';
    const stdin = this.proc?.stdin;
    if (out === '' || !stdin || stdin.destroyed || stdin.writableEnded) return;
    stdin.write(out);
    const writable = stdin.writableLength < WRITE_BUFFER_LIMIT;
    if (writable && !this.writable) {
      this.writable = true;
      this.hooks.onDrain(this);
    } else if (!writable) {
      this.writable = false; // the 'drain' event sets it back
    }
  };

  constructor(workerId: number, hooks: WorkerHooks) {
    this.workerId = workerId;
    this.hooks = hooks;
    this.whenClosed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.whenSpawned = new Promise((resolve) => (this.resolveSpawned = resolve));
  }

  start(command: string[], env: NodeJS.ProcessEnv): void {
    const [file, ...args] = command;
    const proc = spawn(file ?? '', args, { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
    this.proc = proc;
    proc.once('spawn', () => {
      this.pid = proc.pid ?? 0;
      if (this.state === 'starting') this.state = 'ready';
      this.resolveSpawned(true);
      this.hooks.onSpawn(this);
    });
    proc.on('error', (err) => {
      if (this.pid === 0 && this.spawnError === undefined) {
        this.spawnError = err;
        this.state = 'stopping';
        this.resolveSpawned(false);
        this.hooks.onSpawnError(this, err);
      }
      // otherwise a failed kill(): the close event still comes
    });
    proc.once('exit', () => {
      this.state = 'stopping';
      this.closeTimer = setTimeout(() => this.forceClose(), CLOSE_AFTER_EXIT_MS);
    });
    proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => this.finish(code, signal));

    const stdin = proc.stdin!;
    stdin.on('error', noop); // EPIPE when the worker is gone: the close event reports it
    stdin.on('drain', () => {
      if (!this.writable && stdin.writableLength < WRITE_BUFFER_LIMIT) {
        this.writable = true;
        this.hooks.onDrain(this);
      }
    });
    const out = new LineSplitter(
      (line) => this.hooks.onStdoutLine(this, line),
      (bytes) => this.hooks.onStdoutOverflow(this, bytes),
    );
    proc.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    proc.stdout!.on('end', () => out.end());
    const err = new LineSplitter(
      (line) => this.hooks.onStderrLine(this, line),
      (bytes) => this.hooks.onStderrLine(this, `[a stderr line of ${bytes} bytes, too long to log]`),
      STDERR_MAX_LINE,
    );
    proc.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
    proc.stderr!.on('end', () => err.end());
  }

  /**
   * Queues one encoded frame; the frames queued in one pass of the event loop (every broker read of
   * the poll phase) go out as one string in one write after it (setImmediate): fewer syscalls and
   * fewer worker wake-ups than one write per tick, which matters on a small machine (issue 7).
   */
  write(line: string): void {
    if (this.out === '') setImmediate(this.flush);
    this.out += line;
    if (this.out.length >= WRITE_BUFFER_LIMIT) this.writable = false;
  }

  /** Writes the stop frame (after anything queued) and closes stdin: "finish what you hold, then exit". */
  sendStop(line: string): void {
    const stdin = this.proc?.stdin;
    const out = this.out + line;
    this.out = '';
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    stdin.end(out);
  }

  /** Signals the worker's process group (falls back to the process alone). */
  signal(sig: NodeJS.Signals): void {
    if (this.closed || this.proc === undefined) return;
    if (this.pid > 0) {
      try {
        process.kill(-this.pid, sig);
        return;
      } catch {
        // no such group (already gone, or the child changed its group): try the pid itself
      }
    }
    try {
      this.proc.kill(sig);
    } catch {
      // already gone
    }
  }

  private forceClose(): void {
    // the process exited but something still holds its stdio open: stop waiting for it
    this.proc?.stdout?.destroy();
    this.proc?.stderr?.destroy();
    this.proc?.stdin?.destroy();
    this.finish(this.proc?.exitCode ?? null, this.proc?.signalCode ?? null);
  }

  private finish(code: number | null, signal: string | null): void {
    if (this.closed) return;
    this.closed = true;
    this.state = 'stopping';
    if (this.closeTimer) clearTimeout(this.closeTimer);
    if (this.retireTimer) clearTimeout(this.retireTimer);
    this.closeTimer = undefined;
    this.retireTimer = undefined;
    this.resolveSpawned(false);
    this.hooks.onClose(this, code, signal);
    this.resolveClosed();
  }
}

function noop(): void {}
