// Work-arounds for rhea 3.0.5's receiver delivery-count and session transfer ids, which explicit credit
// depends on.

import type { Receiver } from 'rhea';

/**
 * rhea 3.0.5 starts a receiver's delivery-count at 0 instead of the sender's initial-delivery-count,
 * so its flow frames grant more credit than asked when the broker starts elsewhere (RabbitMQ 4 starts
 * at 2^32-5 on purpose: prefetch 3 became 8). Take the broker's value at attach.
 */
export function adoptDeliveryCount(receiver: Receiver): void {
  const r = receiver as unknown as { delivery_count: number; remote?: { attach?: { initial_delivery_count?: unknown } } };
  const initial = r.remote?.attach?.initial_delivery_count;
  if (typeof initial === 'number') r.delivery_count = initial;
}

/** delivery-count is a 32-bit serial number; rhea increments it without wrapping (and would fail to encode it). */
export function wrapDeliveryCount(receiver: Receiver): void {
  const r = receiver as unknown as { delivery_count: number };
  r.delivery_count = r.delivery_count % 2 ** 32;
}


interface IncomingIds {
  incoming?: { next_transfer_id: number; max_transfer_id: number; window: number };
}

/**
 * rhea 3.0.5 sets a session's incoming max-transfer-id to its window before begin and never aligns it
 * with the broker's next-outgoing-id. RabbitMQ 4 starts that id at 2^32-4, and once the id passes 2^32
 * rhea compares an unwrapped next id with a max derived from the wrapped one: the window then looks
 * always exhausted and rhea writes a session flow frame after every batch (~7 µs a message in the
 * profile, and as many frames for the broker: issue 7). Align at attach...
 */
export function adoptTransferWindow(session: unknown): void {
  const inc = (session as IncomingIds).incoming;
  if (inc !== undefined) inc.max_transfer_id = inc.next_transfer_id + inc.window;
}

/** ...and keep both ids below 2^32 together, as the serial numbers they are (per delivery). */
export function wrapTransferIds(session: unknown): void {
  const inc = (session as IncomingIds).incoming;
  if (inc === undefined || inc.next_transfer_id < 2 ** 32) return;
  inc.next_transfer_id -= 2 ** 32;
  if (inc.max_transfer_id >= 2 ** 32) inc.max_transfer_id -= 2 ** 32;
}
