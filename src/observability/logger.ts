// The only place that sets up pino. JSON lines on stdout; secrets are redacted from every message.

import { pino, type Logger } from 'pino';
import { redactSecrets } from '../shared/errors.js';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** where lines go; stdout by default (tests pass a stream) */
  destination?: NodeJS.WritableStream;
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
