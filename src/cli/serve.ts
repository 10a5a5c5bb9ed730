// `jobrunner serve`: runs the daemon until SIGTERM/SIGINT. The first signal drains (SPEC §8), a second
// skips the wait for jobs in flight (they still go back to the broker).

import type { Config } from '../config/types.js';
import { Daemon } from '../daemon/daemon.js';
import { createConfiguredLogger, type Logger } from '../observability/logger.js';
import type { Tracing } from '../observability/tracing.js';
import { deferred } from '../shared/deferred.js';
import { errorMessage } from '../shared/errors.js';

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

export async function runServe(config: Config): Promise<number> {
  const logger = await createConfiguredLogger(config.logs);
  logProcessWarnings(logger);
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
