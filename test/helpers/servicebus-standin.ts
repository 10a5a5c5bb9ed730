// A Service Bus STAND-IN for tests, not a real Service Bus: an AMQP 1.0 peer built with rhea's
// container.listen on 127.0.0.1 that plays the parts of Service Bus the amqp1 driver relies on:
// SASL PLAIN (SAS key name + key), peek-lock deliveries with a lock token as the delivery tag,
// x-opt-locked-until, DeliveryCount, complete (accepted) / abandon (modified, released) /
// dead-letter (rejected with com.microsoft:dead-letter and DeadLetterReason), renew-lock on the
// entity's $management node, and x-opt-scheduled-enqueue-time. It counts everything it sees.

import { randomUUID } from 'node:crypto';
import type { AddressInfo, Server } from 'node:net';
import rhea from 'rhea';
import type { Connection, EventContext, Message, Sender } from 'rhea';

export interface StandinMessage {
  message: Message;
  deliveryCount: number;
  lockedUntil?: number;
  lockToken?: string;
  deadLetterReason?: string;
}

interface QueueState {
  ready: StandinMessage[];
  locked: Map<string, StandinMessage>;
  dead: StandinMessage[];
  completed: StandinMessage[];
  scheduled: { at: number; msg: StandinMessage }[];
  senders: Set<Sender>;
}

export interface ServiceBusStandin {
  readonly port: number;
  url(user: string, key: string): string;
  queue(name: string): QueueState;
  /** SASL PLAIN credentials seen */
  readonly logins: { user: string; password: string }[];
  readonly renewals: number;
  /** settlements that arrived for a lock that had expired */
  readonly lostLockSettlements: number;
  /** locks that expired (the message went back to the queue) */
  readonly expiredLocks: number;
  close(): Promise<void>;
}

export async function startServiceBusStandin(opts: { user: string; key: string; queues: string[]; lockMs?: number }): Promise<ServiceBusStandin> {
  const lockMs = opts.lockMs ?? 30_000;
  const container = rhea.create_container({ id: 'servicebus-standin' });
  const queues = new Map<string, QueueState>();
  for (const q of opts.queues) queues.set(q, { ready: [], locked: new Map(), dead: [], completed: [], scheduled: [], senders: new Set() });
  const logins: { user: string; password: string }[] = [];
  const replySenders = new Map<string, Sender>();
  const connections = new Set<Connection>();
  const timers = new Set<NodeJS.Timeout>();
  let renewals = 0;
  let lostLockSettlements = 0;
  let expiredLocks = 0;

  (container.sasl_server_mechanisms as { enable_plain(cb: (u: string, p: string) => boolean): void }).enable_plain((user, password) => {
    logins.push({ user, password });
    return user === opts.user && password === opts.key;
  });
  container.on('error', () => undefined);
  container.on('connection_open', (ctx: EventContext) => connections.add(ctx.connection));
  container.on('disconnected', (ctx: EventContext) => {
    connections.delete(ctx.connection);
    // locks of a gone connection come back when they expire, as on Service Bus
  });

  const later = (ms: number, f: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };

  function pump(q: QueueState): void {
    for (const s of q.senders) {
      while (s.is_open() && s.sendable() && q.ready.length > 0) {
        const m = q.ready.shift() as StandinMessage;
        const token = randomUUID();
        m.lockToken = token;
        m.lockedUntil = Date.now() + lockMs;
        q.locked.set(token, m);
        armLock(q, m, token);
        const out: Message = {
          ...m.message,
          delivery_count: m.deliveryCount,
          first_acquirer: m.deliveryCount === 0,
          message_annotations: { ...(m.message.message_annotations ?? {}), 'x-opt-locked-until': new Date(m.lockedUntil), 'x-opt-lock-token': token },
        };
        const d = s.send(out, Buffer.from(rhea.string_to_uuid(token)));
        (d as unknown as { standin: { q: QueueState; m: StandinMessage; token: string } }).standin = { q, m, token };
      }
    }
  }

  function armLock(q: QueueState, m: StandinMessage, token: string): void {
    const wait = Math.max(0, (m.lockedUntil ?? 0) - Date.now());
    later(wait + 5, () => {
      if (q.locked.get(token) !== m) return;
      if ((m.lockedUntil ?? 0) > Date.now()) return armLock(q, m, token);
      q.locked.delete(token);
      expiredLocks += 1;
      m.deliveryCount += 1;
      q.ready.unshift(m);
      pump(q);
    });
  }

  function settle(ctx: EventContext, outcome: string): void {
    const info = (ctx.delivery as unknown as { standin?: { q: QueueState; m: StandinMessage; token: string } }).standin;
    if (info === undefined) return;
    const { q, m, token } = info;
    if (process.env['STANDIN_DEBUG']) process.stderr.write(`standin settle ${outcome} ${String((m.message.body as { content?: Buffer })?.content)} ${JSON.stringify(ctx.delivery?.remote_state)}\n`);
    if (q.locked.get(token) !== m) {
      lostLockSettlements += 1;
      return;
    }
    q.locked.delete(token);
    const state = ctx.delivery?.remote_state as { error?: { condition?: string; description?: string; info?: Record<string, unknown> }; delivery_failed?: boolean } | undefined;
    if (outcome === 'accepted') q.completed.push(m);
    else if (outcome === 'rejected') {
      const reason = state?.error?.info?.['DeadLetterReason'] ?? state?.error?.description;
      if (typeof reason === 'string') m.deadLetterReason = reason;
      q.dead.push(m);
    } else {
      // abandon: back to the queue, the delivery counted
      m.deliveryCount += 1;
      q.ready.unshift(m);
    }
    pump(q);
  }

  container.on('sender_open', (ctx: EventContext) => {
    const s = ctx.sender as Sender;
    const address = s.source?.address ?? '';
    if (address.endsWith('/$management')) {
      const reply = (s.target as { address?: string } | undefined)?.address;
      if (reply !== undefined) replySenders.set(reply, s);
      return;
    }
    const q = queues.get(address);
    if (q === undefined) {
      s.close({ condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found` });
      return;
    }
    q.senders.add(s);
    s.on('sendable', () => pump(q));
    s.on('sender_close', () => q.senders.delete(s));
    s.on('accepted', (c: EventContext) => settle(c, 'accepted'));
    s.on('rejected', (c: EventContext) => settle(c, 'rejected'));
    s.on('released', (c: EventContext) => settle(c, 'released'));
    // rhea dispatches a modified outcome as 'released' too (treat_modified_as_released): one listener
    pump(q);
  });

  container.on('receiver_open', (ctx: EventContext) => {
    const r = ctx.receiver;
    const address = r?.target?.address ?? '';
    if (!address.endsWith('/$management') && !queues.has(address)) {
      r?.close({ condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found` });
    }
  });

  container.on('message', (ctx: EventContext) => {
    const r = ctx.receiver;
    const msg = ctx.message as Message;
    const address = r?.target?.address ?? '';
    if (address.endsWith('/$management')) {
      ctx.delivery?.accept();
      return management(address.slice(0, -'/$management'.length), msg);
    }
    const q = queues.get(address);
    if (q === undefined) {
      ctx.delivery?.reject({ condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found` });
      return;
    }
    ctx.delivery?.accept();
    const entry: StandinMessage = { message: msg, deliveryCount: 0 };
    const at = msg.message_annotations?.['x-opt-scheduled-enqueue-time'];
    const when = at instanceof Date ? at.getTime() : typeof at === 'number' ? at : undefined;
    if (when !== undefined && when > Date.now()) {
      const item = { at: when, msg: entry };
      q.scheduled.push(item);
      later(when - Date.now(), () => {
        q.scheduled.splice(q.scheduled.indexOf(item), 1);
        q.ready.push(entry);
        pump(q);
      });
    } else {
      q.ready.push(entry);
      pump(q);
    }
  });

  function management(queueName: string, msg: Message): void {
    const reply = msg.reply_to === undefined ? undefined : replySenders.get(msg.reply_to);
    if (reply === undefined) return;
    const q = queues.get(queueName);
    const op = msg.application_properties?.['operation'];
    let status = 200;
    let body: unknown = {};
    if (op !== 'com.microsoft:renew-lock' || q === undefined) status = 400;
    else {
      const tokens = ((msg.body as { 'lock-tokens'?: unknown[] } | undefined)?.['lock-tokens'] ?? []) as unknown[];
      const expirations: Date[] = [];
      for (const t of tokens) {
        const token = Buffer.isBuffer(t) ? rhea.uuid_to_string(t) : String(t);
        const m = q.locked.get(token);
        if (m === undefined) {
          status = 410;
          continue;
        }
        m.lockedUntil = Date.now() + lockMs;
        renewals += 1;
        expirations.push(new Date(m.lockedUntil));
      }
      body = { expirations };
    }
    reply.send({
      correlation_id: msg.message_id,
      application_properties: { statusCode: status, statusDescription: status === 200 ? 'OK' : 'lock lost or bad request' },
      body,
    } as Message);
  }

  const server: Server = container.listen({ port: 0, host: '127.0.0.1', receiver_options: { autoaccept: false } } as never) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve());
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: (user, key) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(key)}@127.0.0.1:${port}`,
    queue: (name) => queues.get(name) as QueueState,
    logins,
    get renewals() {
      return renewals;
    },
    get lostLockSettlements() {
      return lostLockSettlements;
    },
    get expiredLocks() {
      return expiredLocks;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const c of connections) {
        try {
          (c as unknown as { socket?: { destroy(): void } }).socket?.destroy();
        } catch {
          // gone
        }
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
