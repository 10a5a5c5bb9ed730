// What an amqp1 pipeline sees of its connection: the live rhea connection (LiveConnection) and the
// calls it makes on the Amqp1Connection that holds it (ConnectionHost). Kept apart from connection.ts
// so that pipeline.ts and connection.ts do not import each other.

import type { Connection } from 'rhea';
import type { BrokerInfo } from './broker.js';
import type { ManagementLink } from './management.js';

/** What a pipeline needs of the live connection. */
export interface LiveConnection {
  connection: Connection;
  /** increases with every new connection: deliveries of another generation are stale */
  generation: number;
  broker: BrokerInfo;
  host: string;
  /** RabbitMQ 4's /management node on this connection (created on first use) */
  rabbitManagement(): ManagementLink;
}

/** What an Amqp1Pipeline uses of its connection (Amqp1Connection). */
export interface ConnectionHost {
  /** the live connection, else undefined */
  liveConnection(): LiveConnection | undefined;
  /** waits for a live connection, at most `timeoutMs`; rejects with E_BROKER_CLOSED */
  waitConnected(timeoutMs: number): Promise<LiveConnection>;
  /** the pipeline is closed: no more onConnected / onDisconnected calls for it */
  forget(pipeline: object): void;
}
