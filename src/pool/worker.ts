// One worker process: spawn, stdio transport (stdout through the protocol's decoder, stderr as lines,
// batched writes with backpressure), signals. It knows nothing of jobs' outcomes nor of any protocol's
// frames: the pool (pool.ts) decides; this file reports through WorkerHooks.
// Each worker runs in its own process group (detached) so a signal reaches a `sh -c` wrapper's child too.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Chunk, Decoded, WorkerJob, WorkerProtocol } from '../protocol/codec.js';
import { LineSplitter } from '../shared/lines.js';
import type { JobCallbacks, JobOutcome, WorkerExitReason } from './types.js';

/** A job the pool holds: queued, then on a worker until settled. */
export interface PendingJob {
  /** the job id (job.id), kept after the job is let go */
  readonly id: string;
  /** the job until it is written: dropped then, so the pool does not keep its body alive (issue 7) */
  job: WorkerJob | undefined;
  callbacks: JobCallbacks;
  resolve: (outcome: JobOutcome) => void;
  /** ms epoch when run() was called (allocate_timeout) */
  queuedAt: number;
  /** ms epoch after which exec_ttl kills the worker; 0: none */
  deadline: number;
  /** ms epoch when a worker got it; 0 while queued */
  assignedAt?: number;
  worker: WorkerProcess | undefined;
  settled: boolean;
}

export interface WorkerHooks {
  onSpawn(w: WorkerProcess): void;
  onSpawnError(w: WorkerProcess, err: Error): void;
  /** what the protocol's decoder found in the worker's stdout, in order */
  onStdout(w: WorkerProcess, event: Decoded): void;
  onStderrLine(w: WorkerProcess, line: string): void;
  /** the worker closed its stdout and kept running: it can answer nothing more */
  onStdoutClosed(w: WorkerProcess): void;
  /** stdin can take more frames again */
  onDrain(w: WorkerProcess): void;
  /** the process is gone and its stdio closed (called once) */
  onClose(w: WorkerProcess, code: number | null, signal: string | null): void;
}

/** Frames buffered on one stdin beyond this stop new jobs going to that worker until it drains. */
const WRITE_BUFFER_LIMIT = 1024 * 1024;
/** stderr lines longer than this are not kept whole while they arrive (only their length is logged) */
const STDERR_MAX_LINE = 64 * 1024;
/** a stderr line is logged up to this many characters, then cut with a note (a log line stays cheap) */
export const STDERR_LOG_CHARS = 8 * 1024;
/** after stdout closed, how long a worker that is still running has to exit before it is killed */
const STDOUT_CLOSED_GRACE_MS = 1000;
/** after 'exit', how long to wait for the stdio to close (a grandchild may hold it) */
const CLOSE_AFTER_EXIT_MS = 2000;

export class WorkerProcess {
  readonly workerId: number;
  pid = 0;
  state: 'starting' | 'ready' | 'stopping' = 'starting';
  readonly jobs = new Map<string, PendingJob>();
  /** jobs handed to it (max_jobs) */
  dispatched = 0;
  /** jobs it answered (ack or nack) */
  done = 0;
  /** answered at least one job with a valid frame */
  answered = false;
  /** ms epoch of its last valid frame (0: none yet) */
  lastFrameAt = 0;
  /** warned once already that a job it holds got no answer for a long while */
  warnedSilent = false;
  /** sent `ready` (or answered the protocol's handshake) */
  announced = false;
  /** the most jobs it may hold at once: min(announced max_concurrency, pool.max_concurrency) */
  capacity = 1;
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
  /** the pool's per-worker timers (retiring a worker; waiting for its handshake), cleared on close */
  retireTimer: NodeJS.Timeout | undefined;
  startTimer: NodeJS.Timeout | undefined;

  private proc: ChildProcess | undefined;
  /** text frames queued in this pass of the event loop, after the chunks in outChunks */
  private out = '';
  /** earlier frames queued in this pass when a protocol writes bytes (undefined while every frame is text) */
  private outChunks: Chunk[] | undefined;
  /** bytes queued in this pass (out and outChunks) */
  private outBytes = 0;
  private closeTimer: NodeJS.Timeout | undefined;
  private stdoutTimer: NodeJS.Timeout | undefined;
  private resolveClosed!: () => void;
  private resolveSpawned!: (ok: boolean) => void;
  private readonly hooks: WorkerHooks;
  private readonly flush = (): void => {
    const out = this.out;
    const chunks = this.outChunks;
    this.out = '';
    this.outChunks = undefined;
    this.outBytes = 0;
    const stdin = this.proc?.stdin;
    if ((out === '' && chunks === undefined) || !stdin || stdin.destroyed || stdin.writableEnded) return;
    if (chunks === undefined) {
      stdin.write(out);
    } else {
      stdin.cork();
      for (const c of chunks) stdin.write(c);
      if (out !== '') stdin.write(out);
      stdin.uncork();
    }
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

  start(command: string[], env: NodeJS.ProcessEnv, protocol: WorkerProtocol, pipeline: string, cwd?: string): void {
    const [file, ...args] = command;
    const proc = spawn(file ?? '', args, { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true, ...(cwd !== undefined ? { cwd } : {}) });
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
    const decoder = protocol.decoder({ pipeline, workerId: this.workerId, pid: proc.pid ?? 0, daemonPid: process.pid }, (event) => this.hooks.onStdout(this, event));
    proc.stdout!.on('data', (chunk: Buffer) => decoder.push(chunk));
    proc.stdout!.on('end', () => {
      decoder.end();
      // a worker that closed its stdout but runs on can answer no job ever again: it is dead to us. An
      // exiting worker closes stdout too, just before its exit: give that a moment before calling it so
      if (!this.closed && this.state !== 'stopping') {
        this.stdoutTimer = setTimeout(() => {
          if (!this.closed && this.state !== 'stopping') this.hooks.onStdoutClosed(this);
        }, STDOUT_CLOSED_GRACE_MS);
      }
    });
    const err = new LineSplitter(
      (line) => this.hooks.onStderrLine(this, line.length > STDERR_LOG_CHARS ? `${line.slice(0, STDERR_LOG_CHARS)} [cut: the line had ${line.length} characters]` : line),
      (bytes) => this.hooks.onStderrLine(this, `[a stderr line of ${bytes} bytes, too long to log]`),
      STDERR_MAX_LINE,
    );
    proc.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
    proc.stderr!.on('end', () => err.end());
  }

  /**
   * Queues one encoded frame; the frames queued in one pass of the event loop (every broker read of
   * the poll phase) go out in one write after it (setImmediate): fewer syscalls and fewer worker
   * wake-ups than one write per tick, which matters on a small machine (issue 7).
   */
  write(chunk: Chunk): void {
    if (this.outBytes === 0) setImmediate(this.flush);
    if (typeof chunk === 'string') {
      this.out += chunk;
    } else {
      if (this.out !== '') (this.outChunks ??= []).push(this.out);
      this.out = '';
      (this.outChunks ??= []).push(chunk);
    }
    this.outBytes += chunk.length;
    if (this.outBytes >= WRITE_BUFFER_LIMIT) this.writable = false;
  }

  /** Writes the stop frame (after anything queued) and closes stdin: "finish what you hold, then exit". */
  sendStop(stop: Chunk): void {
    const stdin = this.proc?.stdin;
    const chunks = this.outChunks ?? [];
    if (this.out !== '') chunks.push(this.out);
    this.out = '';
    this.outChunks = undefined;
    this.outBytes = 0;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    for (const c of chunks) stdin.write(c);
    stdin.end(stop);
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
    if (this.stdoutTimer) clearTimeout(this.stdoutTimer);
    if (this.retireTimer) clearTimeout(this.retireTimer);
    if (this.startTimer) clearTimeout(this.startTimer);
    this.closeTimer = undefined;
    this.retireTimer = undefined;
    this.startTimer = undefined;
    this.resolveSpawned(false);
    this.hooks.onClose(this, code, signal);
    this.resolveClosed();
  }
}

function noop(): void {}
