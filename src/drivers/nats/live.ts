// What the nats pipelines, pull loops and delay movers see of their connection (connection.ts implements
// it): the live client for the current connection generation, and a wait for the next one. A separate
// file so none of them imports the connection that creates them.

import type { NatsConnection as NatsClient } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../../observability/logger.js';

/** The live client. */
export interface LiveNats {
  nc: NatsClient;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** increases with every disconnect: deliveries of another generation are stale */
  generation: number;
  /** the server's version as it announced it, e.g. "2.9.10" */
  serverVersion: string;
  /** resolves when this connection is lost (a request sent just before may never be answered) */
  lost: Promise<void>;
}

export interface NatsLink {
  readonly logger: Logger;
  /** the delay movers of this connection: one per stream a pipeline consumes */
  readonly movers: { acquire(stream: string): void };
  liveConnection(): LiveNats | undefined;
  currentGeneration(): number;
  isStopping(): boolean;
  /** waits for a live connection, at most timeoutMs; rejects with E_BROKER_CLOSED */
  waitConnected(timeoutMs: number, signal?: AbortSignal): Promise<LiveNats>;
  /** a pipeline drops itself when closed */
  forget(pipeline: { readonly name: string }): void;
}
