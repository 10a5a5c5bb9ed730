// The only place that sets up pino. JSON lines on stdout; secrets are redacted from every message.

import { pino, type Logger } from 'pino';
import { redactSecrets } from '../shared/errors.js';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** where lines go; stdout by default (tests pass a stream) */
  destination?: NodeJS.WritableStream;
}

/**
 * The daemon's logger from the `logs` section: JSON lines, or with `encoding: console` one human line per
 * event through pino-pretty (loaded only then); to stdout, stderr or a file. Redaction runs before either.
 */
export async function createConfiguredLogger(logs: { level: string; encoding?: 'json' | 'console'; output?: string }): Promise<Logger> {
  const output = logs.output ?? 'stdout';
  const fd = output === 'stdout' ? 1 : output === 'stderr' ? 2 : undefined;
  if (logs.encoding !== 'console') {
    return createLogger({ level: logs.level, destination: pino.destination(fd !== undefined ? { dest: fd, sync: false } : { dest: output, mkdir: true, append: true, sync: false }) as unknown as NodeJS.WritableStream });
  }
  const { default: pretty } = await import('pino-pretty');
  const colorize = fd !== undefined && process[fd === 1 ? 'stdout' : 'stderr'].isTTY === true;
  const stream = pretty({
    colorize,
    destination: fd ?? output,
    mkdir: true,
    append: true,
    sync: false,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'name',
    singleLine: true,
  });
  return createLogger({ level: logs.level, destination: stream });
}

export function createLogger(options: LoggerOptions): Logger {
  const dest = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level,
      base: { name: 'jobrunner' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['password', '*.password', 'token', '*.token', 'url', '*.url', 'addr', '*.addr'], censor: redactValue },
      hooks: {
        // messages can carry URLs from broker errors: strip passwords from every message
        logMethod(args, method) {
          const redacted = args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>;
          method.apply(this, redacted);
        },
      },
      serializers: { err: serializeError },
    },
    dest as pino.DestinationStream,
  );
}

function redactValue(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1];
  if (key === 'password' || key === 'token') return value ? '***' : value;
  return typeof value === 'string' ? redactSecrets(value) : value;
}

function serializeError(err: unknown): unknown {
  const s = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  if (typeof s['message'] === 'string') s['message'] = redactSecrets(s['message']);
  if (typeof s['stack'] === 'string') s['stack'] = redactSecrets(s['stack']);
  return s;
}

/** A logger that drops everything (tests, and code paths before the config is loaded). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
