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
 * Removes secrets from text: the password part of anything that looks like an address
 * (scheme://user:PASS@host), SAS keys and bearer tokens. Applied to every error message and log line,
 * so it is linear in the text and costs one indexOf for a line with no address in it. The password is
 * found by pattern, not by URL parsing: it runs from the first `:` after `scheme://` to the last `@`
 * before the next blank or quote, so a password holding `@`, `/` or `+` that was not URL-encoded is
 * hidden whole (too much hidden beats a secret shown).
 */
export function redactSecrets(text: string): string {
  let out = text.includes('://') ? redactUserinfo(text) : text;
  if (out.length > 16 && /sharedaccesskey=/i.test(out)) out = out.replace(/(SharedAccessKey=)[^;\s"']+/gi, '$1***');
  if (out.includes('Bearer')) out = out.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, '$1***');
  return out;
}

/** characters that end an address in free text (and in JSON log lines) */
function endsAddress(c: number): boolean {
  // blank, ", ', <, >, `, and control characters
  return c <= 0x20 || c === 0x22 || c === 0x27 || c === 0x3c || c === 0x3e || c === 0x60;
}

/** scheme://user:PASS@host -> scheme://user:***@host for every address in text, in one pass. */
function redactUserinfo(text: string): string {
  let out = '';
  let copied = 0;
  let from = 0;
  for (;;) {
    const sep = text.indexOf('://', from);
    if (sep === -1) break;
    const start = sep + 3;
    let end = start;
    while (end < text.length && !endsAddress(text.charCodeAt(end))) end++;
    // the last @ of this address, then the first : before it: every character is looked at once more at most
    let at = end - 1;
    while (at >= start && text.charCodeAt(at) !== 0x40) at--;
    if (at >= start) {
      let colon = start;
      while (colon < at && text.charCodeAt(colon) !== 0x3a) colon++;
      if (colon < at) {
        out += text.slice(copied, colon + 1) + '***';
        copied = at;
      }
    }
    from = end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Removes the password from one URL, keeping everything else (for logs and /pipelines). */
export function redactUrl(url: string): string {
  return redactSecrets(url);
}
