// An AMQP 1.0 peer that takes publishes only as far as the test lets it: every link the client attaches
// to send on gets link credit only when the parent asks (`grant`), and no credit at all otherwise, as a
// broker that blocks publishers does. It accepts what arrives and remembers the message ids in order of
// arrival. Runs in a process of its own (started by credit-peer.ts) so that it does not share the rhea
// the driver under test patches. IPC: `ready` with the port; `grant` (n credits on every open link),
// `state` (the ids received, the links attached), `close`.

import rhea from 'rhea';
import type { AddressInfo, Server } from 'node:net';
import type { Connection, EventContext, Receiver } from 'rhea';

interface Request {
  type: 'grant' | 'state' | 'close';
  id: number;
  n?: number;
}

// credit_window 0: rhea grants nothing by itself on the links the client attaches
const container = rhea.create_container({ id: 'credit-peer', credit_window: 0 } as never);
(container.sasl_server_mechanisms as { enable_plain(cb: (u: string, p: string) => boolean): void }).enable_plain(() => true);
const receivers = new Set<Receiver>();
const connections = new Set<Connection>();
const received: string[] = [];
let attached = 0;
container.on('error', () => undefined);
container.on('connection_open', (ctx: EventContext) => connections.add(ctx.connection));
container.on('disconnected', (ctx: EventContext) => connections.delete(ctx.connection));
container.on('receiver_open', (ctx: EventContext) => {
  attached++;
  if (ctx.receiver !== undefined) receivers.add(ctx.receiver);
});
container.on('receiver_close', (ctx: EventContext) => {
  if (ctx.receiver !== undefined) receivers.delete(ctx.receiver);
});
container.on('message', (ctx: EventContext) => received.push(String(ctx.message?.message_id)));

const server = container.listen({ port: 0, host: '127.0.0.1', credit_window: 0 } as never) as unknown as Server;
await new Promise<void>((resolve) => server.once('listening', () => resolve()));
const send = (m: unknown): void => void process.send?.(m);

process.on('message', (m: Request) => {
  if (m.type === 'grant') {
    for (const r of receivers) if (r.is_open()) r.add_credit(m.n ?? 0);
    send({ type: 'granted', id: m.id });
  } else if (m.type === 'state') {
    send({ type: 'state', id: m.id, state: { received, attached } });
  } else {
    for (const c of connections) c.close();
    server.close();
    send({ type: 'closed', id: m.id });
    process.disconnect();
  }
});
// the parent went away: so does the peer
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: (server.address() as AddressInfo).port });
