// Every rhea internal the amqp1 driver touches, in one place. rhea 3.0.5 is pinned in package.json; the
// driver reads or writes fields rhea does not export (credit, delivery counts, transfer ids, the peer's
// open and attach frames, a link pair's handles, a closing connection's socket and timers) and patches
// two hot paths (rhea-patches.ts). openRheaGate(), called from Amqp1Connection.start() (never at import),
// asserts once that the installed rhea is the pinned version and has each of these shapes (RHEA_INTERNALS,
// listed by a test), then installs the patches. No other file of the driver reaches into rhea's objects.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import rhea from 'rhea';
import type { Connection, Receiver, Sender, Session } from 'rhea';
import { JobrunnerError } from '../../shared/errors.js';
import { PATCHED_RHEA_VERSION, installLeanDeliveries, installLeanFrames, quietDisabledRheaLoggers } from './rhea-patches.js';

export { CREDIT_OVERRUN } from './rhea-patches.js';

/** the one rhea release this driver's internals were checked against */
export const PINNED_RHEA_VERSION = PATCHED_RHEA_VERSION;

/** a file of rhea's lib/ folder as text ('' when it is not there) */
function libSource(file: string): string {
  try {
    const require = createRequire(import.meta.url);
    const path = join(dirname(require.resolve('rhea')), file);
    return String(require('node:fs').readFileSync(path, 'utf8'));
  } catch {
    return '';
  }
}

function rheaVersion(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return (require(join(dirname(require.resolve('rhea')), '../package.json')) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** One internal: what the driver uses it for, and where rhea's source shows it is there as used. */
interface Internal {
  name: string;
  use: string;
  file: string;
  /** snippets of that file's source that must all be present */
  shows: string[];
}

/** Each rhea internal the driver touches (the test lists them: adding one means adding it here). */
export const RHEA_INTERNALS: readonly Internal[] = [
  { name: 'receiver.credit', use: 'credit top-up reads the link credit left (on RabbitMQ 3.x it waits for 0)', file: 'link.js', shows: ['this.credit = 0;'] },
  { name: 'receiver.delivery_count', use: 'adoptDeliveryCount / wrapDeliveryCount: explicit credit needs the broker\'s count', file: 'link.js', shows: ['this.delivery_count = 0;', '++this.delivery_count;'] },
  { name: 'sender.{credit, delivery_count}', use: 'senderCreditLeft: a publish waits for link credit; rhea counts a delivery against it only once written', file: 'session.js', shows: ['d.link.credit--;', 'd.link.delivery_count++;'] },
  { name: 'link.remote.attach', use: 'the peer\'s attach frame: initial-delivery-count, a refused source (passive check)', file: 'link.js', shows: ['this.remote.attach = frame.performative;'] },
  { name: 'session.incoming.{next_transfer_id, max_transfer_id, window}', use: 'adoptTransferWindow / wrapTransferIds: transfer ids past 2^32', file: 'session.js', shows: ['this.max_transfer_id = this.next_transfer_id + this.window;'] },
  { name: 'session.links, session.remote.handles, session.on_attach', use: 'pairLinks: both links of a same-name management pair reachable', file: 'session.js', shows: ['this.links = {}; // map by name', "this.remote = {'handles':{}};", 'Session.prototype.on_attach = function (frame)'] },
  { name: 'connection.remote.open', use: 'the broker\'s product and version from its open frame', file: 'connection.js', shows: ['this.remote.open'] },
  { name: 'connection.{socket, heartbeat_in, heartbeat_out, abort_idle}', use: 'closing a connection that never answers: its socket and idle timers', file: 'connection.js', shows: ['this.heartbeat_in = undefined;', 'this.heartbeat_out = undefined;', 'this.abort_idle = undefined;', 'this.socket'] },
  { name: 'Incoming.prototype.on_transfer', use: 'lean deliveries (rhea-patches.ts)', file: 'session.js', shows: ['current.accept = function', 'delete current.frames'] },
  { name: 'frames.read_frame via Transport.prototype.read', use: 'lean transfer frames (rhea-patches.ts)', file: 'transport.js', shows: ['frames.read_frame(slice)', 'frame.performative.dispatch(this.handler, frame)'] },
  { name: 'message.{accepted, released, rejected, modified}', use: 'outcomeState: the state of a disposition sent unsettled (confirmed settlements, RabbitMQ 3.x)', file: 'message.js', shows: ["define_outcome({name:'accepted'", "define_outcome({name:'rejected'", "define_outcome({name:'released'", "name:'modified'"] },
  { name: 'log.js loggers', use: 'quiet the loggers DEBUG does not name (rhea-patches.ts)', file: 'log.js', shows: ['debug('] },
];

/** the internals the installed rhea does not show as used (empty on the pinned version) */
export function missingRheaInternals(): string[] {
  const sources = new Map<string, string>();
  const missing: string[] = [];
  for (const i of RHEA_INTERNALS) {
    if (!sources.has(i.file)) sources.set(i.file, libSource(i.file));
    const src = sources.get(i.file) as string;
    if (!i.shows.every((s) => src.includes(s))) missing.push(i.name);
  }
  return missing;
}

/** Throws E_INTERNAL unless the installed rhea is the pinned version with every internal as used. */
export function assertRheaInternals(): void {
  const version = rheaVersion();
  const missing = version === PINNED_RHEA_VERSION ? missingRheaInternals() : [];
  if (version !== PINNED_RHEA_VERSION || missing.length > 0) {
    throw new JobrunnerError(
      'E_INTERNAL',
      `the amqp1 driver needs rhea ${PINNED_RHEA_VERSION} (installed: ${version ?? 'none found'})${missing.length > 0 ? `; not as used: ${missing.join(', ')}` : ''}: install the version package.json pins`,
    );
  }
}

let opened = false;

/** Asserts rhea's internals and installs the patches, once per process; from Amqp1Connection.start(). */
export function openRheaGate(): void {
  if (opened) return;
  assertRheaInternals();
  quietDisabledRheaLoggers();
  installLeanFrames();
  opened = true;
}

// ---- the accessors: the only code of the driver that reaches into rhea's objects ----

type ReceiverInternals = { credit: number; delivery_count: number; remote?: { attach?: Record<string, unknown> } };

/** a new receiver session: rhea's deliveries as lean instances (rhea-patches.ts) once the gate is open */
export function prepareReceiverSession(session: Session): void {
  if (opened) installLeanDeliveries(session);
}

/** the credit the receiver has left */
export function linkCredit(receiver: Receiver): number {
  return (receiver as unknown as ReceiverInternals).credit;
}

/**
 * The link credit a sender has for one more delivery: the broker's credit less the deliveries handed to
 * rhea (`handed`, counted by the caller since the attach) that rhea has not written yet. rhea takes a
 * delivery off the credit only when it writes the transfer (Outgoing.process, on a later tick), and
 * sender.send() queues whatever it is given, credit or not.
 */
export function senderCreditLeft(sender: Sender, handed: number): number {
  const s = sender as unknown as ReceiverInternals;
  // a sender's delivery_count moves only when rhea writes a transfer (or drains after set_drained(),
  // which the driver never calls): at most `handed`
  return s.credit - Math.max(0, handed - s.delivery_count);
}

type OutcomeName = 'accepted' | 'released' | 'rejected' | 'modified';

/**
 * The delivery state rhea's Delivery methods would write for an outcome (rhea's message module builds
 * them; its typings leave the builders out), for Delivery.update(false, state): a disposition sent
 * unsettled, which RabbitMQ 3.x answers with a settled one (settlements.ts).
 */
export function outcomeState(name: OutcomeName, fields?: Record<string, unknown>): unknown {
  const builders = (rhea as unknown as { message: Record<OutcomeName, (fields?: object) => { described(): unknown }> }).message;
  return builders[name](fields).described();
}

/** the peer's attach frame of a link, once it came */
export function remoteAttach(link: Receiver | Sender): Record<string, unknown> | undefined {
  return (link as unknown as ReceiverInternals).remote?.attach;
}

/**
 * rhea 3.0.5 starts a receiver's delivery-count at 0 instead of the sender's initial-delivery-count,
 * so its flow frames grant more credit than asked when the broker starts elsewhere (RabbitMQ 4 starts
 * at 2^32-5 on purpose: prefetch 3 became 8). Take the broker's value at attach.
 */
export function adoptDeliveryCount(receiver: Receiver): void {
  const initial = remoteAttach(receiver)?.['initial_delivery_count'];
  if (typeof initial === 'number') (receiver as unknown as ReceiverInternals).delivery_count = initial;
}

/** delivery-count is a 32-bit serial number; rhea increments it without wrapping (and would fail to encode it). */
export function wrapDeliveryCount(receiver: Receiver): void {
  const r = receiver as unknown as ReceiverInternals;
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
 * profile, and as many frames for the broker). Align at attach...
 */
export function adoptTransferWindow(session: Session): void {
  const inc = (session as unknown as IncomingIds).incoming;
  if (inc !== undefined) inc.max_transfer_id = inc.next_transfer_id + inc.window;
}

/** ...and keep both ids below 2^32 together, as the serial numbers they are (per delivery). */
export function wrapTransferIds(session: Session): void {
  const inc = (session as unknown as IncomingIds).incoming;
  if (inc === undefined || inc.next_transfer_id < 2 ** 32) return;
  inc.next_transfer_id -= 2 ** 32;
  if (inc.max_transfer_id >= 2 ** 32) inc.max_transfer_id -= 2 ** 32;
}

/** the properties of the broker's open frame */
export function remoteOpenProperties(conn: Connection): Record<string, unknown> | undefined {
  return (conn as unknown as { remote?: { open?: { properties?: Record<string, unknown> } } }).remote?.open?.properties;
}

/** a connection's socket and idle timers, for a close the broker never answers */
export function connectionLeftovers(conn: Connection): { socket?: { destroy(): void }; timers: () => (NodeJS.Timeout | undefined)[] } {
  const c = conn as unknown as { socket?: { destroy(): void }; heartbeat_in?: NodeJS.Timeout; heartbeat_out?: NodeJS.Timeout; abort_idle?: NodeJS.Timeout };
  return { ...(c.socket ? { socket: c.socket } : {}), timers: () => [c.heartbeat_in, c.heartbeat_out, c.abort_idle] };
}

/**
 * rhea keeps a session's links by name, so the second link of a same-name pair (the link-pair spec
 * RabbitMQ 4 follows) hides the first: its attach is never sent and the peer's attach for it would go
 * to the other link. Keep both reachable and route the peer's attach by role.
 */
export function pairLinks(session: Session, name: string, sender: Sender, receiver: Receiver): void {
  type Frame = { performative: { name: string; role: boolean; handle: number } };
  type Internals = { links: Record<string, unknown>; remote: { handles: unknown[] }; on_attach(frame: Frame): void };
  type LinkInternals = { on_attach(frame: Frame): void; remote: { attach?: unknown } };
  const s = session as unknown as Internals;
  s.links[`${name}\u0000sender`] = sender;
  s.links[name] = receiver;
  const original = s.on_attach.bind(s);
  s.on_attach = (frame: Frame): void => {
    if (frame.performative.name !== name) return original(frame);
    // role true: the peer receives, so the attach answers our sender
    const link = (frame.performative.role ? sender : receiver) as unknown as LinkInternals;
    s.remote.handles[frame.performative.handle] = link;
    link.on_attach(frame);
    link.remote.attach = frame.performative;
  };
}
