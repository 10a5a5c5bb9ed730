// `jobrunner serve`: runs the daemon until SIGTERM/SIGINT. The first signal drains (SPEC §8), a second
// skips the wait for jobs in flight (they still go back to the broker).

import type { Config } from '../config/types.js';
import { Daemon } from '../daemon/daemon.js';
import { createConfiguredLogger, type Logger } from '../observability/logger.js';
import type { Tracing } from '../observability/tracing.js';
import { deferred } from '../shared/deferred.js';
import { errorMessage } from '../shared/errors.js';
import { format } from 'node:util';

/**
 * Node's process warnings (a MaxListenersExceededWarning, a deprecation, rhea's RheaWarning, an OpenTelemetry
 * ExperimentalWarning) as log lines like everything else the daemon prints, one JSON line each (code
 * W_NODE, the warning's name, its Node code when it has one; its stack at debug). Node's own printer, a bare
 * "(node:PID) Warning: ..." on stderr, is the 'warning' listener Node adds at startup: it is taken away for
 * good, as the process ends when serve does.
 */
function logProcessWarnings(logger: Logger): void {
  for (const printer of process.listeners('warning')) process.off('warning', printer);
  process.on('warning', (w: Error & { code?: unknown }) => {
    logger.warn(
      {
        code: 'W_NODE',
        warning: w.name,
        ...(typeof w.code === 'string' ? { node_code: w.code } : {}),
        // where it came from, at logs.level debug
        ...(logger.isLevelEnabled('debug') ? { stack: w.stack } : {}),
      },
      w.message,
    );
  });
}

/**
 * What a library prints with console.* while serve runs, as log lines too (code W_CONSOLE): rhea writes
 * "[connection-1] error on write: ProtocolError ..." with console.error even when the error is handled.
 * console.error and console.warn log at warn, log and info at info, debug and trace at debug. The console
 * is given back when serve returns, so the CLI's own last line (a failed start) is printed as before.
 */
function routeConsole(logger: Logger): () => void {
  const c = console as unknown as Record<string, (...args: unknown[]) => void>;
  const levels = { error: 'warn', warn: 'warn', log: 'info', info: 'info', debug: 'debug', trace: 'debug' } as const;
  const saved = new Map<string, (...args: unknown[]) => void>();
  for (const [method, level] of Object.entries(levels)) {
    saved.set(method, c[method] as (...args: unknown[]) => void);
    c[method] = (...args: unknown[]): void => logger[level]({ code: 'W_CONSOLE' }, format(...args));
  }
  return () => {
    for (const [method, fn] of saved) c[method] = fn;
  };
}

export async function runServe(config: Config): Promise<number> {
  const logger = await createConfiguredLogger(config.logs);
  logProcessWarnings(logger);
  const restoreConsole = routeConsole(logger);
  try {
    return await serveWith(config, logger);
  } finally {
    restoreConsole();
  }
}

async function serveWith(config: Config, logger: Logger): Promise<number> {
  let tracing: Tracing | undefined;
  if (config.otel.enabled) {
    const { startTracing } = await import('../observability/otel.js');
    tracing = await startTracing({ logger });
  }
  const daemon = new Daemon({ config, logger, ...(tracing ? { tracing } : {}) });
  const done = deferred<number>();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'signal received: shutting down (a second signal skips the wait for jobs in flight)');
      daemon.stop().then(() => done.resolve(0), (err: unknown) => {
        logger.error({ err: errorMessage(err) }, 'shutdown failed');
        done.resolve(1);
      });
    } else {
      logger.warn({ signal }, 'second signal: not waiting for jobs in flight; returning them to the broker');
      daemon.hurry();
    }
  };
  // SIGHUP: restart the workers gracefully (new worker code deployed into a running sidecar), not exit
  const onHangup = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'signal received: restarting the workers one at a time, each after its jobs are done');
    daemon.resetAll();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);
  // Node ends the process on SIGUSR2 by default: no signal but SIGTERM / SIGINT ends the daemon
  const onUsr2 = (): void => logger.warn({ signal: 'SIGUSR2' }, 'signal ignored: SIGTERM or SIGINT stops the daemon');
  process.on('SIGUSR2', onUsr2);
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception: shutting down');
    daemon.stop().finally(() => done.resolve(1));
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: errorMessage(reason) }, 'unhandled promise rejection');
  });
  if (config.file === '<embedded>') {
    logger.warn(
      { demo: true },
      'RUNNING THE EMBEDDED DEMO: no configuration file given or found (-c, $JOBRUNNER_CONFIG, ./jobs.yaml, ./.rr.yaml); ' +
        'this is an in-process pipeline "default" with the Node.js example worker, not your pipelines',
    );
  }
  for (const warning of config.warnings) logger.warn({ code: 'W_CONFIG' }, warning);
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  const code = await done.promise;
  // the caller exits the process next: the last lines out first (at most a second)
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    logger.flush(() => {
      clearTimeout(timer);
      setImmediate(resolve);
    });
  });
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onHangup);
  process.off('SIGUSR2', onUsr2);
  return code;
}
