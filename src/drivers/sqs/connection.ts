// The sqs DriverConnection: one AWS SDK client shared by every sqs pipeline. SQS speaks HTTP, one request
// at a time, so there is no connection to lose: "connected" means the last request reached SQS, and a
// delivery's receipt handle stays good across network trouble (until its visibility timeout runs out).

import { EventEmitter } from 'node:events';
import { ListQueuesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DriverName, PipelineConfig } from '../../config/types.js';
import type { Logger } from '../../observability/logger.js';
import { RECONNECT_BACKOFF, backoffDelay, type BackoffPolicy } from '../../shared/backoff.js';
import { sleep } from '../../shared/deferred.js';
import { JobrunnerError } from '../../shared/errors.js';
import type { BrokerPipeline, ConnectionStatus, DriverConnection } from '../driver.js';
import { MAX_NATIVE_DELAY_S } from './codec.js';
import { answered, awsCode, createSqsClient, describeError, describeTarget } from './client.js';
import type { SqsSettings } from './options.js';
import { SqsPipeline, type SqsPipelineConfig } from './pipeline.js';

export interface SqsConnectionOptions {
  settings: SqsSettings;
  logger: Logger;
  /** tests shorten the retry backoff */
  backoff?: BackoffPolicy;
  /** SQS's longest per-message delay, 900 s; tests shorten it to run the re-delay path in seconds */
  maxNativeDelayS?: number;
}

/** AWS errors that still prove SQS was reached and the caller is who they say (a narrow IAM policy). */
const REACHED = new Set(['AccessDenied', 'AccessDeniedException', 'AWS.SimpleQueueService.AccessDenied']);

export function createSqsConnection(options: SqsConnectionOptions): SqsConnection {
  return new SqsConnection(options);
}

export class SqsConnection extends EventEmitter implements DriverConnection {
  readonly driver: DriverName = 'sqs';
  readonly logger: Logger;
  readonly client: SQSClient;
  readonly backoff: BackoffPolicy;
  readonly maxNativeDelayS: number;
  private readonly target: string;
  private readonly pipelines = new Set<SqsPipeline>();
  private started: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private st: ConnectionStatus;
  private everConnected = false;

  constructor(options: SqsConnectionOptions) {
    super();
    this.logger = options.logger;
    this.backoff = options.backoff ?? RECONNECT_BACKOFF;
    this.maxNativeDelayS = options.maxNativeDelayS ?? MAX_NATIVE_DELAY_S;
    this.client = createSqsClient(options.settings);
    this.target = describeTarget(options.settings);
    this.st = { connected: false, since: Date.now(), reconnects: 0, url: this.target };
  }

  /** aborted by stop(): every request and poll of every pipeline ends */
  get signal(): AbortSignal {
    return this.stopController.signal;
  }

  start(signal?: AbortSignal): Promise<void> {
    this.started ??= this.probe();
    if (signal === undefined) return this.started;
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => resolve(), { once: true });
      this.started?.then(resolve, reject);
    });
  }

  pipeline(config: PipelineConfig): BrokerPipeline {
    if (config.driver !== 'sqs') throw new JobrunnerError('E_INTERNAL', `pipeline ${config.name} uses driver ${config.driver}, not sqs`);
    const p = new SqsPipeline(this, config as SqsPipelineConfig);
    this.pipelines.add(p);
    return p;
  }

  /** @internal a closed pipeline */
  forget(p: SqsPipeline): void {
    this.pipelines.delete(p);
  }

  status(): ConnectionStatus {
    return { ...this.st };
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopController.abort();
    await Promise.allSettled([...this.pipelines].map((p) => p.close()));
    this.client.destroy();
    this.setStatus(false);
  }

  /** @internal a request reached SQS */
  noteOk(): void {
    if (!this.st.connected) this.setStatus(true);
  }

  /** @internal a request failed; only a failure to reach SQS at all marks the connection down */
  noteFailure(err: unknown): void {
    if (answered(err) || this.stopController.signal.aborted) return;
    if (this.st.connected) this.logger.warn({ code: 'E_BROKER_CLOSED' }, `sqs: cannot reach ${this.target}: ${describeError(err)}; retrying`);
    this.setStatus(false, describeError(err));
  }

  /** Connects in the sense SQS has: one cheap request that must reach SQS with valid credentials. */
  private async probe(): Promise<void> {
    const signal = this.stopController.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.client.send(new ListQueuesCommand({ MaxResults: 1 }), { abortSignal: signal });
        this.noteOk();
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (REACHED.has(awsCode(err))) {
          this.noteOk();
          return;
        }
        failures++;
        const line = `E_BROKER_CONNECT cannot reach SQS at ${this.target}: ${describeError(err)}`;
        if (failures === 1) this.logger.error({ code: 'E_BROKER_CONNECT' }, line);
        else this.logger.debug({ code: 'E_BROKER_CONNECT', attempt: failures }, line);
        this.setStatus(false, `cannot reach SQS at ${this.target}: ${describeError(err)}`);
        await sleep(backoffDelay(this.backoff, failures), signal);
      }
    }
  }

  private setStatus(connected: boolean, error?: string): void {
    const prev = this.st;
    const next: ConnectionStatus = { connected, since: prev.since, reconnects: prev.reconnects, url: this.target };
    if (!connected && (error ?? prev.error) !== undefined) next.error = (error ?? prev.error) as string;
    if (connected !== prev.connected) {
      next.since = Date.now();
      if (connected) {
        if (this.everConnected) next.reconnects++;
        this.everConnected = true;
        this.logger.info({ reconnect: next.reconnects > prev.reconnects }, `sqs: reached ${this.target}`);
      }
    }
    const changed = next.connected !== prev.connected || next.error !== prev.error;
    this.st = next;
    if (changed) this.emit('status', this.status());
  }
}
