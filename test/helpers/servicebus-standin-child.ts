// The Service Bus stand-in (servicebus-standin.ts) in a process of its own: started by
// startServiceBusStandinProcess (servicebus-standin-process.ts), so that the driver under test and the
// stand-in do not share one rhea (the driver patches its process's rhea when a connection starts; the
// stand-in must not decode with the code it is checking). Talks to its parent over IPC: `ready` with
// the port, then a snapshot of what it saw for each `state` request, until `close`.

import { startServiceBusStandin } from './servicebus-standin.js';

interface Request {
  type: 'state' | 'close';
  id: number;
}

const opts = JSON.parse(process.env['STANDIN_OPTS'] ?? '{}') as { user: string; key: string; queues: string[]; lockMs?: number };
const sb = await startServiceBusStandin(opts);
const send = (m: unknown): void => void process.send?.(m);

process.on('message', (m: Request) => {
  if (m.type === 'close') {
    void sb.close().then(() => {
      send({ type: 'closed', id: m.id });
      process.disconnect();
    });
    return;
  }
  const queues: Record<string, unknown> = {};
  for (const name of opts.queues) {
    const q = sb.queue(name);
    queues[name] = {
      ready: q.ready.length,
      locked: q.locked.size,
      completed: q.completed.length,
      dead: q.dead.map((d) => ({ deadLetterReason: d.deadLetterReason })),
      scheduled: q.scheduled.map((s) => ({ scheduledEnqueueTime: s.msg.message.message_annotations?.['x-opt-scheduled-enqueue-time'] })),
    };
  }
  send({ type: 'state', id: m.id, state: { logins: sb.logins, renewals: sb.renewals, lostLockSettlements: sb.lostLockSettlements, expiredLocks: sb.expiredLocks, queues } });
});
// the parent went away: so does the stand-in
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: sb.port });
