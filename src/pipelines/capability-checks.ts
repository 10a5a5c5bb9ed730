// The start-up checks of a pipeline's policy against what its broker can do (its capabilities, read
// after declare()): a retry policy whose delays the broker cannot honour, or that needs dead-lettering
// the broker does not have, is a clear error at start, never a redelivery loop later.

import type { PipelineConfig, RetryConfig } from '../config/types.js';
import type { BrokerPipeline, Capabilities } from '../drivers/driver.js';
import type { Logger } from '../observability/logger.js';
import { backoffDelay } from '../shared/backoff.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';

/** Throws E_DELAY_UNSUPPORTED or E_CONFIG_REF when the pipeline asks what its broker cannot do. */
export async function checkCapabilities(config: PipelineConfig, broker: BrokerPipeline, logger: Logger): Promise<void> {
  const caps = broker.capabilities();
  checkDeadLetter(config, caps, logger);
  await checkRetryDelays(config, broker, caps);
}

function checkDeadLetter(config: PipelineConfig, caps: Capabilities, logger: Logger): void {
  if (caps.nativeDeadLetter || config.deadLetter !== undefined) return;
  if (config.retry !== undefined) {
    throw new JobrunnerError('E_CONFIG_REF', `pipeline ${config.name}: its broker does not dead-letter messages by itself, so a pipeline with a \`retry\` block needs \`dead_letter.pipeline\``);
  }
  logger.warn({ pipeline: config.name }, `pipeline ${config.name}: its broker does not dead-letter messages by itself; without dead_letter.pipeline a job that fails for good is terminated (dropped)`);
}

/** whether retries of this policy ever need a publish with a delay */
function needsDelays(retry: RetryConfig | undefined, caps: Capabilities): retry is RetryConfig {
  if (retry === undefined || retry.maxAttempts < 2 || retry.backoff.initialMs <= 0) return false;
  // the broker's own retry-after covers every backoff delay
  if (caps.retryLater !== false && retry.backoff.maxMs <= caps.retryLater.maxDelayMs) return false;
  return caps.delays !== 'any';
}

async function checkRetryDelays(config: PipelineConfig, broker: BrokerPipeline, caps: Capabilities): Promise<void> {
  const retry = config.retry;
  if (!needsDelays(retry, caps)) return;
  const what = caps.delayAdvice?.broker ?? 'this broker';
  const fix = `${caps.delayAdvice?.fix ? `${caps.delayAdvice.fix}, or ` : ''}remove the backoff (retry.backoff.initial: 0)`;
  const docs = caps.delayAdvice?.docs === undefined ? '' : ` (${caps.delayAdvice.docs})`;
  if (caps.delays === 'none' || broker.checkDelay === undefined) {
    throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${config.name}: its retry policy delays messages, and ${what} cannot delay them; ${fix}`);
  }
  // 'existing': every delay the backoff uses must have its delay queue already
  if (retry.backoff.jitter > 0) {
    throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${config.name}: ${what} takes delays only through delay queues that already exist, and retry.backoff.jitter makes their names unpredictable; set jitter: 0 and create the queues${docs}, or ${fix}`);
  }
  for (let attempt = 1; attempt < retry.maxAttempts; attempt++) {
    try {
      await broker.checkDelay(backoffDelay(retry.backoff, attempt, () => 0.5));
    } catch (err) {
      throw new JobrunnerError('E_DELAY_UNSUPPORTED', `pipeline ${config.name}: its retry policy needs ${errorMessage(err)}, or ${fix}`, { cause: err });
    }
  }
}
