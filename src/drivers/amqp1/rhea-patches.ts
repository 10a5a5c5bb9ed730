// Patches of rhea 3.0.5 internals on the per-message path (issue 7), both installed by the driver and
// both leaving rhea as it is when its files are not where or what they were checked against.
//
// quietDisabledRheaLoggers(): rhea logs through `debug` loggers several times per message (frames,
// events). A `debug` logger takes its arguments as a rest array before it checks whether it is enabled:
// ~220 bytes of garbage per message for nothing. The loggers that DEBUG does not name become no-ops.
//
// installLeanDeliveries(): rhea builds each incoming delivery as an object literal carrying six fresh
// closures (update, accept, release, reject, modified) and later `delete`s its `frames` property, which
// turns it into a slow dictionary-mode object. A raw consumer settles at once and never notices;
// jobrunner holds every delivery until its worker answers, so all of that survives young-generation
// collections (a sampling heap profile put ~1.5 KB per message in Incoming.on_transfer; with this patch
// the scavenges of 100,000 messages went from ~126 taking ~470 ms to ~111 taking ~330 ms). It gives
// rhea's Incoming an on_transfer that is rhea's own, line for line, except that a delivery is an instance
// of LeanDelivery, whose methods live on its prototype, and `frames` is set to undefined instead of
// deleted. It applies only to the rhea version it was copied from (the source is checked too). Adapted
// from rhea/lib/session.js (Apache License 2.0, Copyright 2015 Red Hat Inc.). The message of a complete
// delivery is read by leanDecodeMessage (lean-decode.ts) and by rhea's message.decode when that declines.
//
// installLeanFrames(): rhea reads every frame through its general typed reader; transfer frames (one per
// message) are read by leanReadTransferFrame instead, and every other frame, or a transfer it declines,
// by rhea's frames.read_frame as before.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UNDECODABLE } from './message.js';
import { leanDecodeMessage, leanReadTransferFrame, type MessageShapes } from './lean-decode.js';

/** the event a rhea Connection emits (with the receiver) when a transfer arrives beyond the link credit */
export const CREDIT_OVERRUN = 'jobrunner_credit_overrun';

/** the rhea release whose Incoming.prototype.on_transfer this file reproduces */
export const PATCHED_RHEA_VERSION = '3.0.5';

/** rhea's internals are untyped */
type Any = any;

interface RheaInternals {
  message: {
    decode(data: Buffer): unknown;
    data_section(content: Buffer): unknown;
    accepted(): { described(): unknown };
    released(): { described(): unknown };
    rejected(fields: object): { described(): unknown };
    modified(fields: object): { described(): unknown };
  };
  util: { is_defined(v: unknown): boolean };
  version: string;
}

let state: 'unset' | 'installed' | 'skipped' = 'unset';
let framesState: 'unset' | 'installed' | 'skipped' = 'unset';

/** whether the lean on_transfer is in place (for tests and the startup log) */
export function leanDeliveriesInstalled(): boolean {
  return state === 'installed';
}

/** whether transfer frames are read by leanReadTransferFrame (for tests) */
export function leanFramesInstalled(): boolean {
  return framesState === 'installed';
}

/** a file of rhea's lib/ folder (rhea's package exports no such paths); throws when it is not there */
function rheaLib<T>(file: string): T {
  const require = createRequire(import.meta.url);
  return require(join(dirname(require.resolve('rhea')), file)) as T;
}

function loadInternals(): RheaInternals | undefined {
  try {
    const pkg = rheaLib<{ version: string }>('../package.json');
    return { message: rheaLib('message.js'), util: rheaLib('util.js'), version: pkg.version };
  } catch {
    return undefined;
  }
}

type DebugFn = ((...args: unknown[]) => void) & { enabled?: boolean };

/** Replaces rhea's loggers that DEBUG does not name with a no-op (see the top of this file). Once, at load. */
export function quietDisabledRheaLoggers(): void {
  let log: Record<string, DebugFn>;
  try {
    log = rheaLib('log.js');
  } catch {
    return; // another rhea layout: leave its logging alone
  }
  const noop = (): void => undefined;
  for (const [name, fn] of Object.entries(log)) {
    // `enabled` is undefined, not false, for every logger while DEBUG is unset
    if (typeof fn === 'function' && fn.enabled !== true) log[name] = noop;
  }
}

/**
 * Installs the lean on_transfer on the prototype of `session.incoming` (rhea's Incoming, shared by every
 * session of the process), once. Does nothing on another rhea version or an on_transfer that does not
 * look like the one this was copied from.
 */
export function installLeanDeliveries(session: unknown): void {
  if (state !== 'unset') return;
  const incoming = (session as { incoming?: object } | undefined)?.incoming;
  if (incoming === undefined) return;
  const proto = Object.getPrototypeOf(incoming) as { on_transfer?: unknown };
  const rhea = loadInternals();
  const original = typeof proto.on_transfer === 'function' ? String(proto.on_transfer) : '';
  if (rhea === undefined || rhea.version !== PATCHED_RHEA_VERSION || !original.includes('current.accept = function') || !original.includes('delete current.frames')) {
    state = 'skipped';
    return;
  }
  const { message, util } = rhea;
  const MessageClass = (message.decode(Buffer.alloc(0)) as object).constructor as new () => Record<string, unknown>;
  const shapes: MessageShapes = { newMessage: () => new MessageClass(), dataSection: (content) => message.data_section(content) };

  class LeanDelivery {
    id: Any;
    tag: Any;
    format: Any;
    link: Any;
    settled = false;
    state: Any = undefined;
    remote_settled: boolean;
    remote_state: Any;
    frames: Buffer[] | undefined;
    incomplete: Any = undefined;
    private readonly incoming: Any;

    constructor(incoming: Any, receiver: Any, frame: Any) {
      this.id = frame.performative.delivery_id;
      this.tag = frame.performative.delivery_tag;
      this.format = frame.performative.message_format;
      this.link = receiver;
      this.remote_settled = frame.performative.settled === undefined ? false : frame.performative.settled;
      this.remote_state = frame.performative.state;
      this.frames = [frame.payload];
      this.incoming = incoming;
    }

    update(settled: boolean | undefined, deliveryState: unknown): void {
      let settled_ = settled;
      if (settled_ === undefined) {
        settled_ = this.link.local.attach.rcv_settle_mode !== 1;
      }
      this.incoming.update(this, settled_, deliveryState);
    }

    accept(): void {
      this.update(undefined, message.accepted().described());
    }

    release(params?: object): void {
      if (params) {
        this.update(undefined, message.modified(params).described());
      } else {
        this.update(undefined, message.released().described());
      }
    }

    reject(error?: unknown): void {
      this.update(undefined, message.rejected({ error }).described());
    }

    modified(params: object): void {
      this.update(undefined, message.modified(params).described());
    }
  }

  /**
   * A message neither decoder can read (rhea's recursive reader overflows on a list nested thousands
   * deep) must not throw into the connection's input: that closes the connection, the broker hands the
   * same message out again, and the pipeline stops. It is marked instead, and the driver dead-letters it.
   */
  const decodeOrMark = (data: Buffer): unknown => {
    try {
      return leanDecodeMessage(data, shapes) ?? message.decode(data);
    } catch (err) {
      // what can still be read (properties for the id, the data sections for the body) is kept for the dead letter
      const salvaged: Record<string, unknown> = { body: data };
      for (const [code, section] of sections(data)) {
        if (code !== 0x73 && code !== 0x75) continue;
        try {
          const part = message.decode(section) as Record<string, unknown>;
          if (code === 0x75) salvaged['body'] = part['body'];
          else for (const k of ['message_id', 'subject', 'content_type']) if (part[k] !== undefined) salvaged[k] = part[k];
        } catch {
          // this section cannot be read either
        }
      }
      salvaged[UNDECODABLE] = err instanceof Error ? err.message : String(err);
      return salvaged;
    }
  };

  proto.on_transfer = function onTransfer(this: Any, frame: Any, receiver: Any): void {
    this.next_transfer_id++;
    if (receiver.is_remote_open()) {
      if (this.next_delivery_id === undefined) {
        this.next_delivery_id = frame.performative.delivery_id;
      }
      let current: Any;
      if (receiver._incomplete) {
        current = receiver._incomplete;
        if (util.is_defined(frame.performative.delivery_id) && current.id !== frame.performative.delivery_id) {
          throw Error('frame sequence error: delivery ' + current.id + ' not complete, got ' + frame.performative.delivery_id);
        }
        if (frame.payload) {
          current.frames.push(frame.payload);
        }
      } else if (this.next_delivery_id === frame.performative.delivery_id) {
        current = new LeanDelivery(this, receiver, frame);
        this.deliveries.push(current);
        this.next_delivery_id++;
      } else {
        throw Error('frame sequence error: expected ' + this.next_delivery_id + ', got ' + frame.performative.delivery_id);
      }
      current.incomplete = frame.performative.more;
      if (current.incomplete) {
        receiver._incomplete = current;
      } else {
        receiver._incomplete = undefined;
        const data = current.frames.length === 1 ? current.frames[0] : Buffer.concat(current.frames);
        current.frames = undefined;
        if (receiver.credit > 0) receiver.credit--;
        // rhea prints this with console.error; here the connection's owner is told (the driver logs it as
        // JSON), and only without one is it a process warning
        else if (receiver.connection?.listenerCount?.(CREDIT_OVERRUN) > 0) receiver.connection.emit(CREDIT_OVERRUN, receiver);
        else process.emitWarning(`Received transfer when credit was ${receiver.credit}`, 'RheaWarning');
        receiver.delivery_count++;
        const msgctxt = current.format === 0 ? { message: decodeOrMark(data), delivery: current } : { message: data, delivery: current, format: current.format };
        receiver.dispatch('message', receiver._context(msgctxt));
      }
    } else {
      throw Error('transfer after detach');
    }
  };
  state = 'installed';
}

/**
 * The sections of an encoded AMQP 1.0 message as [descriptor code, bytes], found without decoding their
 * values (every compound value says its size up front), so a section nested too deep for rhea's
 * recursive reader is stepped over, not read. Stops at the first thing it cannot frame.
 */
export function sections(data: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let pos = 0;
  const skipValue = (): boolean => {
    if (pos >= data.length) return false;
    const code = data[pos++]!;
    const hi = code >> 4;
    let size: number;
    if (hi === 0x4) size = 0;
    else if (hi === 0x5) size = 1;
    else if (hi === 0x6) size = 2;
    else if (hi === 0x7) size = 4;
    else if (hi === 0x8) size = 8;
    else if (hi === 0x9) size = 16;
    else if (hi === 0xa || hi === 0xc || hi === 0xe) {
      if (pos + 1 > data.length) return false;
      size = data[pos]! + 1;
    } else if (hi === 0xb || hi === 0xd || hi === 0xf) {
      if (pos + 4 > data.length) return false;
      size = data.readUInt32BE(pos) + 4;
    } else return false;
    pos += size;
    return pos <= data.length;
  };
  while (pos < data.length) {
    const start = pos;
    // a section: 0x00, a descriptor (smallulong 0x53 XX or ulong 0x80), then its value
    if (data[pos] !== 0x00) break;
    pos++;
    let code: number;
    if (data[pos] === 0x53) {
      code = data[pos + 1] ?? -1;
      pos += 2;
    } else if (data[pos] === 0x80 && pos + 9 <= data.length) {
      code = data.readUInt32BE(pos + 5);
      pos += 9;
    } else break;
    if (!skipValue()) break;
    out.push([code, data.subarray(start, pos)]);
  }
  return out;
}

interface RheaFrames {
  read_frame(buffer: Buffer): unknown;
}

/**
 * Has rhea's Transport read transfer frames with leanReadTransferFrame (see the top of this file), once,
 * process-wide. Does nothing on another rhea version or a Transport.read that does not call
 * frames.read_frame the way the one checked against does.
 */
export function installLeanFrames(): void {
  if (framesState !== 'unset') return;
  framesState = 'skipped';
  let frames: RheaFrames;
  let transportRead: string;
  try {
    if (rheaLib<{ version: string }>('../package.json').version !== PATCHED_RHEA_VERSION) return;
    frames = rheaLib('frames.js');
    transportRead = String(rheaLib<{ prototype: { read: unknown } }>('transport.js').prototype.read);
  } catch {
    return;
  }
  if (typeof frames.read_frame !== 'function' || !transportRead.includes('frames.read_frame(slice)') || !transportRead.includes('frame.performative.dispatch(this.handler, frame)')) return;
  const readFrame = frames.read_frame.bind(frames);
  frames.read_frame = (buffer: Buffer): unknown => leanReadTransferFrame(buffer) ?? readFrame(buffer);
  framesState = 'installed';
}
