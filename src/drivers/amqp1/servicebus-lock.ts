// Service Bus peek-lock renewal: a delivery held by a worker keeps its lock by itself (renewed at half
// of its remaining time, through the queue's $management node), and a touch frame renews it at once.

import type { Delivery as RheaDelivery, Message } from 'rhea';
import type { Logger } from '../../observability/logger.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';
import type { LiveConnection } from './live.js';
import { ManagementLink } from './management.js';

/** What lock renewal needs of a delivery. */
export interface LockedDelivery {
  readonly id: string;
  readonly settled: boolean;
  renewTimer: NodeJS.Timeout | undefined;
}

/** One pipeline's lock renewals. */
export class LockRenewal {
  private mgmt: ManagementLink | undefined;

  constructor(
    private readonly queue: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Keeps `delivery`'s lock alive until it is settled; returns its touch(), which renews at once.
   * `checkOpen` throws when the delivery can no longer be renewed (settled, its link gone).
   */
  watch(delivery: LockedDelivery, live: LiveConnection, rd: RheaDelivery, message: Message, checkOpen: () => void): () => Promise<void> {
    const lockToken = rd.tag;
    const renew = async (): Promise<void> => {
      checkOpen();
      const until = await this.renewLock(live, lockToken);
      if (!delivery.settled) schedule(until);
    };
    const schedule = (until: number | undefined): void => {
      if (delivery.renewTimer !== undefined) clearTimeout(delivery.renewTimer);
      const wait = until === undefined ? 10_000 : Math.max(500, (until - Date.now()) / 2);
      delivery.renewTimer = setTimeout(() => {
        renew().catch((err) => this.logger.warn({ err: errorMessage(err), id: delivery.id }, 'amqp1 lock renewal failed'));
      }, wait);
      delivery.renewTimer.unref();
    };
    const lockedUntil = message.message_annotations?.['x-opt-locked-until'];
    schedule(lockedUntil instanceof Date ? lockedUntil.getTime() : typeof lockedUntil === 'number' ? lockedUntil : undefined);
    return renew;
  }

  /** the connection is gone: its management link too */
  reset(): void {
    this.mgmt = undefined;
  }

  close(): void {
    this.mgmt?.close();
  }

  private async renewLock(live: LiveConnection, lockToken: Buffer | string): Promise<number | undefined> {
    this.mgmt ??= new ManagementLink(live.connection, `${this.queue}/$management`, 'servicebus');
    const rhea = (await import('rhea')).default;
    const token = Buffer.isBuffer(lockToken) ? lockToken : Buffer.from(lockToken);
    const res = await this.mgmt.request(
      {
        properties: { operation: 'com.microsoft:renew-lock' },
        body: { 'lock-tokens': rhea.types.wrap_array([token], 0x98, undefined) },
      },
      'E_BROKER_CLOSED',
    );
    if (res.status !== 200) throw new JobrunnerError('E_BROKER_CLOSED', `renew-lock answered ${res.status}${res.description ? `: ${res.description}` : ''}`);
    const exp = (res.body as { expirations?: unknown[] } | undefined)?.expirations?.[0];
    return exp instanceof Date ? exp.getTime() : typeof exp === 'number' ? exp : undefined;
  }
}
