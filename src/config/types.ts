// The configuration after loading: interpolated, validated, defaults applied, RoadRunner shorthand
// expanded, durations in milliseconds, frozen. Everything past src/config/ sees only these types.

/**
 * A driver's canonical name (`driver:` after aliases are resolved): one of the descriptors in
 * src/drivers/registry.ts. Each driver's own option and connection types live in its folder.
 */
export type DriverName = string;

/** What every driver's pipeline options have (RoadRunner gives every driver these two keys). */
export interface PipelineOptionsBase {
  /** unsettled deliveries held at once (AMQP prefetch, link credit, max ack pending) */
  prefetch: number;
  /** default priority of pushed jobs */
  priority: number;
}

export interface TlsConfig {
  cert?: string;
  key?: string;
  rootCa?: string;
  insecureSkipVerify: boolean;
  /** RoadRunner's amqp.tls.client_auth_type, kept for compatibility */
  clientAuthType?: string;
}

export interface PoolConfig {
  numWorkers: number;
  maxConcurrency: number;
  /** the worker protocol's name (src/protocol/registry.ts) */
  protocol: string;
  /** 0: never restart for job count */
  maxJobs: number;
  allocateTimeoutMs: number;
  destroyTimeoutMs: number;
  /** per-job timeout, 0: none */
  execTtlMs: number;
  /** RSS limit in MB, 0: none */
  maxWorkerMemoryMb: number;
}

export interface RetryConfig {
  maxAttempts: number;
  backoff: { initialMs: number; maxMs: number; multiplier: number; jitter: number };
}

interface PipelineBase {
  name: string;
  /** argv (shell string already turned into ['/bin/sh', '-c', cmd]) */
  command: string[];
  env: Record<string, string>;
  pool: PoolConfig;
  /** consumed at start (listed in jobs.consume) */
  consume: boolean;
  /** job name for messages that carry none */
  job?: string;
  retry?: RetryConfig;
  deadLetter?: { pipeline: string };
  /** RoadRunner's requeue_on_fail (a driver key there, a pipeline policy here): see NormalizedOptions */
  requeueOnFail: boolean;
  /** RoadRunner's redial_timeout, ms: a lost connection stays healthy this long while it redials */
  redialTimeoutMs: number;
}

/** One pipeline; O: its driver's options (src/drivers/<driver>/options.ts). */
export interface PipelineConfig<O extends PipelineOptionsBase = PipelineOptionsBase> extends PipelineBase {
  driver: DriverName;
  options: O;
}

export interface HttpConfig {
  /** host:port; loopback unless told otherwise; '' or 'off' disables the server */
  address: string;
  token?: string;
  /** http.allow_unauthenticated: a non-loopback address without a token is allowed */
  allowUnauthenticated?: boolean;
}

export interface RpcConfig {
  /** tcp://host:port or unix:///path */
  listen: string;
  allowUnauthenticated: boolean;
}

export interface Config {
  /** absolute path of the file it came from ('<embedded>' for the built-in default) */
  file: string;
  /**
   * the workers' working folder: the configuration file's folder, so a relative path in a worker command
   * means the same from wherever the daemon is started (as in a compose file)
   */
  workdir: string;
  version: string;
  /**
   * Each driver's connection settings by its top-level section name (`amqp`, `amqp1`, ...), as its
   * descriptor's normalizeSection made them; only the sections the file has.
   */
  connections: Readonly<Record<string, unknown>>;
  http: HttpConfig;
  /** RoadRunner's RPC server, present when the file has an `rpc` section */
  rpc?: RpcConfig;
  logs: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    /** json lines (the default) or one human line per event; from logs.encoding, else logs.mode */
    encoding?: 'json' | 'console';
    /** stdout (the default), stderr or a file path */
    output?: string;
  };
  otel: { enabled: boolean };
  /** in file order */
  pipelines: PipelineConfig[];
  /** `file:line:col path: message` for what is accepted but not used (serve logs them once at start) */
  warnings: readonly string[];
}
