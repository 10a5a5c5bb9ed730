// Errors with stable codes. Every error a user can meet is a JobrunnerError whose code is listed in
// ERROR_CODES (and documented in docs/errors.md; a test keeps the two in step).

export const ERROR_CODES = {
  // configuration (exit 2)
  E_CONFIG_READ: 'the configuration file cannot be read',
  E_CONFIG_YAML: 'the configuration file is not valid YAML',
  E_CONFIG_SCHEMA: 'the configuration does not match the schema',
  E_CONFIG_REF: 'the configuration names something that does not exist',
  E_CONFIG_ENV: 'an environment variable used by the configuration is not set',
  // command line (exit 2)
  E_USAGE: 'the command line is wrong',
  // broker
  E_BROKER_CONNECT: 'the broker cannot be reached',
  E_BROKER_CLOSED: 'the broker connection or channel closed',
  E_BROKER_DECLARE: 'the broker refused to declare or check a queue or exchange',
  E_PUBLISH: 'the broker did not confirm a publish',
  E_UNPUBLISHABLE: 'a message cannot be published because of its own content (a header or value the broker cannot carry)',
  E_DELAY_UNSUPPORTED: 'the broker cannot delay messages the way the pipeline asks',
  E_STALE_DELIVERY: 'a result arrived for a delivery of a connection that is gone',
  // messages
  E_BAD_MESSAGE: 'a message cannot be turned into a job',
  // workers
  E_WORKER_SPAWN: 'a worker process cannot be started',
  E_WORKER_CRASH: 'a worker process exited while it held jobs',
  E_WORKER_TIMEOUT: 'a job ran past its exec_ttl',
  E_WORKER_MEMORY: 'a worker went over max_worker_memory',
  E_WORKER_PROTOCOL: 'a worker broke the frame protocol',
  E_ALLOCATE_TIMEOUT: 'no worker was free within allocate_timeout',
  E_JOB_FAILED: 'a worker answered nack',
  // daemon and control
  E_PIPELINE_UNKNOWN: 'no pipeline has that name',
  E_HTTP: 'the daemon HTTP API answered with an error or cannot be reached',
  E_SHUTDOWN: 'the daemon is shutting down',
  E_RPC: 'a goridge RPC call is malformed, names an unknown method, or cannot be served',
  E_RPC_LISTEN: 'the RPC server cannot listen on rpc.listen',
  E_INTERNAL: 'an unexpected internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class JobrunnerError extends Error {
  readonly code: ErrorCode;
  /** Extra lines shown under the one-line message (e.g. every config problem). */
  readonly details: readonly string[];
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JobrunnerError';
    this.code = code;
    this.details = options.details ?? [];
  }
}

/** Turns anything caught into an Error (a thrown string, an amqplib close frame, undefined...). */
export function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (typeof err === 'string') return new Error(err);
  try {
    return new Error(JSON.stringify(err));
  } catch {
    return new Error(String(err));
  }
}

export function errorMessage(err: unknown): string {
  return redactSecrets(toError(err).message);
}

/**
 * Removes secrets from text: the password part of URLs (amqp://user:PASS@host), SAS keys and
 * bearer tokens. Applied to every error message and log line that can carry a URL.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@\s/]*)@/gi, '$1***@')
    .replace(/(SharedAccessKey=)[^;\s"']+/gi, '$1***')
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, '$1***');
}

/** Removes the password from one URL, keeping everything else (for logs and /pipelines). */
export function redactUrl(url: string): string {
  return redactSecrets(url);
}
