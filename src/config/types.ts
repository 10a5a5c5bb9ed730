// The configuration after loading: interpolated, validated, defaults applied, RoadRunner shorthand
// expanded, durations in milliseconds, frozen. Everything past src/config/ sees only these types.

export type DriverName = 'amqp091' | 'amqp1' | 'memory';

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

export interface Amqp091ConnectionConfig {
  /** one or more URLs (a cluster), tried in turn; contain passwords: never log them unredacted */
  urls: string[];
  tls?: TlsConfig;
}

export interface Amqp1ConnectionConfig {
  urls: string[];
  containerId: string;
  tls?: TlsConfig;
  /** idle timeout sent in the open frame, ms (heartbeats at half of it) */
  idleTimeoutMs: number;
}

export type ExchangeType = 'direct' | 'fanout' | 'topic' | 'headers';

/** amqp091 pipeline options: RoadRunner's amqp driver keys, with RoadRunner's defaults. */
export interface Amqp091PipelineOptions {
  queue: string;
  /** '' is the default exchange: publish straight to the queue, bind nothing */
  exchange: string;
  exchangeType: ExchangeType;
  exchangeDurable: boolean;
  exchangeAutoDelete: boolean;
  exchangeDeclare: boolean;
  routingKey: string;
  prefetch: number;
  /** default priority of pushed jobs; also x-max-priority when > 0 ... see docs/drivers/amqp091.md */
  priority: number;
  durable: boolean;
  queueAutoDelete: boolean;
  exclusive: boolean;
  consumerId: string;
  deleteQueueOnStop: boolean;
  multipleAck: boolean;
  requeueOnFail: boolean;
  redialTimeoutMs: number;
  queueHeaders: Record<string, unknown>;
  queueDeclare: boolean;
}

export type Amqp1Broker = 'auto' | 'rabbitmq' | 'servicebus' | 'generic';

export interface Amqp1PipelineOptions {
  queue: string;
  /** a full source/target address that overrides the derived one */
  address?: string;
  exchange?: string;
  routingKey?: string;
  prefetch: number;
  priority: number;
  durable: boolean;
  broker: Amqp1Broker;
  requeueOnFail: boolean;
  redialTimeoutMs: number;
}

export interface MemoryPipelineOptions {
  prefetch: number;
  priority: number;
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
}

export type PipelineConfig =
  | (PipelineBase & { driver: 'amqp091'; options: Amqp091PipelineOptions })
  | (PipelineBase & { driver: 'amqp1'; options: Amqp1PipelineOptions })
  | (PipelineBase & { driver: 'memory'; options: MemoryPipelineOptions });

export interface HttpConfig {
  /** host:port; loopback unless told otherwise; '' or 'off' disables the server */
  address: string;
  token?: string;
}

export interface Config {
  /** absolute path of the file it came from ('<embedded>' for the built-in default) */
  file: string;
  version: string;
  amqp?: Amqp091ConnectionConfig;
  amqp1?: Amqp1ConnectionConfig;
  http: HttpConfig;
  logs: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent' };
  otel: { enabled: boolean };
  /** in file order */
  pipelines: PipelineConfig[];
}
