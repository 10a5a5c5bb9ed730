// The seam between the worker pool and a worker protocol. The pool (src/pool/) spawns processes, moves
// bytes and keeps time; a protocol (one folder under src/protocol/, listed in registry.ts) says what the
// bytes mean: how a job and `stop` are written to a worker's stdin, how its stdout turns into frames,
// what it adds to the environment and how a worker says it is up. Everything here is pure: no I/O, no
// timers, no process state; a codec may keep per-worker parsing state only inside a FrameDecoder.
//
// The pool's contract towards a protocol, in one place:
// - It calls `env()` once per worker it spawns and adds the result to the configured environment.
// - Right after the spawn it writes `handshake.hello()` when the protocol has a handshake, and gives that
//   worker no job until the decoder yields a `ready` frame; without one within `handshake.timeoutMs`
//   (default: the pool's allocate_timeout) the start failed: the worker is killed and counted as a
//   failed start (crash-loop backoff). Without a handshake a `ready` frame is optional: a worker that
//   sends none gets its first job after a short probation (it lived 500 ms), so one that dies at start
//   takes no job with it.
// - A worker holds at most min(announced max_concurrency, pool.max_concurrency) jobs; 1 when it
//   announced none, and always 1 when the protocol does not multiplex (`multiplexed: false`).
// - It writes `encodeJob()` output for each job and `encodeStop()` once, then closes stdin; a worker
//   still running `stopTimeoutMs` (default: the pool's destroy budget) later gets SIGTERM, then SIGKILL.
// - It feeds every stdout chunk to one FrameDecoder per worker, in order, and `end()` at EOF. It acts on
//   what the decoder yields: `frame` (below), `noise` (logged as a warning, ignored), `invalid` (a
//   protocol error: the job it names, or every job the worker holds, fails as E_WORKER_PROTOCOL, and
//   the worker is replaced).
// - Answer frames name the job by `id`. A protocol without job ids (`multiplexed: false`) leaves `id`
//   out and the answer is for the one job that worker holds; an answer while it holds none is a
//   protocol error.

/** Header values as every driver hands them over: name -> list of values. */
export type Headers = Record<string, string[]>;

/** Bytes for a worker's stdin. Strings are written as UTF-8; a codec returns whichever it builds faster. */
export type Chunk = string | Uint8Array;

/** A job as every protocol gets it: what the broker delivered, nothing of any one protocol in it. */
export interface WorkerJob {
  /** the job id (RoadRunner's rr_id, else the message id, else a UUID): unique among held jobs of one worker */
  readonly id: string;
  /** the job name (rr_job, else the message type, else the pipeline's job setting) */
  readonly job: string;
  readonly pipeline: string;
  /** the message body, as the broker delivered it */
  readonly body: Buffer;
  /** the message's content type, when the broker carried one */
  readonly contentType: string | undefined;
  readonly headers: Headers;
  /** 1 on the first delivery, counted by jobrunner across retries */
  readonly attempt: number;
  /** the pipeline's driver as the config names it: amqp091, amqp1, memory, nats, sqs */
  readonly driver: string;
  /** the broker queue (or subject, stream) the job came from */
  readonly queue: string;
  /** the broker's message id (the job id when the message had none) */
  readonly messageId: string;
  readonly redelivered: boolean;
  /** W3C traceparent of the job's consumer span, when tracing is on */
  readonly traceparent: string | undefined;
}

/** A job a worker asks to publish before its own job is settled (protocol v1's `publish`). */
export interface FollowUp {
  /** the pipeline to publish to, by name */
  pipeline: string;
  job: string;
  body: Buffer;
  contentType: string;
  headers: Headers;
  /** 0: now */
  delayMs: number;
  priority?: number;
}

/**
 * What a worker said, in jobrunner's words (every protocol maps its answers onto these). `id` names the
 * job; it is required when the protocol multiplexes and left out when it does not (see the file header).
 */
export type WorkerFrame =
  /**
   * the worker is up and takes jobs now. `maxConcurrency`: how many jobs it can work on at once
   * (absent: 1). A protocol's handshake answer is a `ready` too. At most once, before the worker's
   * first answer (a second one, or one after an answer, is a protocol error).
   */
  | { type: 'ready'; maxConcurrency?: number }
  /** the job is done: settle it as accepted */
  | { type: 'ack'; id?: string }
  /**
   * the job failed. `requeue` absent: the pipeline's retry policy decides; true: retry it (after
   * delayMs, with `headers` merged into the retried message); false: dead-letter it now.
   */
  | { type: 'nack'; id?: string; error: string; requeue?: boolean; delayMs?: number; headers?: Headers }
  /** publish a follow-up job; the job is settled only after the broker confirmed it */
  | { type: 'publish'; id?: string; followUp: FollowUp }
  /** the job is still running: restart its exec_ttl and renew broker locks */
  | { type: 'touch'; id?: string }
  /**
   * give the job back to the broker without spending an attempt, and replace this worker (goridge's
   * `{"stop":true}` answer): the pool sends it `stop` and starts another
   */
  | { type: 'restart'; id?: string };

/** One thing a FrameDecoder found in a worker's stdout. */
export type Decoded =
  | { kind: 'frame'; frame: WorkerFrame }
  /** output that is not a frame and that the protocol tolerates (v1: a line that is not a JSON object) */
  | { kind: 'noise'; text: string }
  /**
   * output that breaks the protocol (a malformed frame, an unknown type, a bad checksum). `id`: the job
   * the broken frame named, when it named one; that job fails as E_WORKER_PROTOCOL, the others the
   * worker held go back to the broker.
   */
  | { kind: 'invalid'; error: string; id?: string };

/** Turns one worker's stdout, chunk by chunk, into Decoded events. Chunks may split a frame anywhere. */
export interface FrameDecoder {
  /** the next stdout bytes; calls the decoder's sink synchronously for each complete event */
  push(chunk: Buffer): void;
  /** stdout closed: report what a last incomplete frame means (nothing, a frame, or invalid) */
  end(): void;
}

/** What the pool knows about a worker when it asks the protocol for its environment. */
export interface WorkerEnvContext {
  pipeline: string;
  /** 1, 2, ... per pipeline, never reused while the daemon runs */
  workerId: number;
  /** pool.max_concurrency: the most jobs the pool gives one worker */
  maxConcurrency: number;
}

/** What the pool knows about a worker once it is spawned. */
export interface WorkerContext {
  pipeline: string;
  workerId: number;
  /** the worker's process id */
  pid: number;
  /** jobrunner's own process id (goridge's handshake sends it) */
  daemonPid: number;
}

/** A start handshake: the pool writes `hello` at spawn and waits for the decoder to yield `ready`. */
export interface Handshake {
  hello(ctx: WorkerContext): Chunk;
  /** how long to wait for the answer; absent: the pool's allocate_timeout */
  timeoutMs?: number;
}

/** One worker protocol. Implementations are plain objects, shared by every pool that uses them. */
export interface WorkerProtocol {
  /** the `pool.protocol` value that selects it */
  readonly name: string;
  /**
   * true: answers carry job ids, so a worker may hold several jobs at once (as many as its `ready`
   * frame announces, capped by pool.max_concurrency). false: a worker holds one job at a time and
   * answers are for that job.
   */
  readonly multiplexed: boolean;
  /** present: every worker must answer it before its first job (see Handshake) */
  readonly handshake?: Handshake;
  /** after `stop`, how long a worker gets to exit before SIGTERM; absent: the pool's own budget */
  readonly stopTimeoutMs?: number;
  /** variables this protocol adds to a worker's environment (after the configured env) */
  env(ctx: WorkerEnvContext): Record<string, string>;
  /**
   * The bytes that hand `job` to a worker. `deadline`: ISO time at which exec_ttl kills it (absent
   * when there is none). May throw (a job this protocol cannot carry): the job then fails as
   * E_WORKER_PROTOCOL and the worker is not touched.
   */
  encodeJob(job: WorkerJob, deadline: string | undefined): Chunk;
  /** the bytes that ask a worker to finish what it holds and exit */
  encodeStop(): Chunk;
  /** a fresh decoder for one worker's stdout; `sink` gets each event synchronously, in order */
  decoder(ctx: WorkerContext, sink: (event: Decoded) => void): FrameDecoder;
}
