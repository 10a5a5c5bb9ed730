// Delayed pushes where the server cannot schedule them (nats-server before 2.12, or a stream that does not
// allow schedules: ./schedule.ts says which). A delayed job goes to a work-queue stream beside the
// pipeline's stream (JOBRUNNER_DELAY_<stream>, subject _jobrunner.delay.<stream>) with its due time and
// target subject in headers. A mover, run by every
// daemon that consumes a pipeline of that stream (they share one durable consumer, so each message is
// moved once), takes each message: not yet due -> nak(remaining), so the server hands it back when due;
// due -> published to its target subject (confirmed, same Nats-Msg-Id, so a mover that dies between
// publish and ack makes no duplicate), then acked, which removes it from the work queue.

import { AckPolicy, RetentionPolicy, StorageType, type Consumer, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { errorMessage } from '../../shared/errors.js';
import type { LiveNats, NatsLink } from './live.js';
import { PullLoop } from './pull.js';
import { consumerInfo, nanos, streamInfo } from './topology.js';
import { MSG_ID_HEADER } from './codec.js';

export const DUE_HEADER = 'x-jobrunner-due';
export const TARGET_HEADER = 'x-jobrunner-target';
const MOVER = 'jobrunner-delay-mover';

export function delayStreamName(stream: string): string {
  return `JOBRUNNER_DELAY_${stream}`;
}

export function delaySubject(stream: string): string {
  return `_jobrunner.delay.${stream}`;
}

/** Creates the delay stream of `stream` if missing (a work queue: moved messages are removed). */
export async function ensureDelayStream(jsm: JetStreamManager, stream: string): Promise<void> {
  const name = delayStreamName(stream);
  if ((await streamInfo(jsm, name)) !== undefined) return;
  try {
    await jsm.streams.add({ name, subjects: [delaySubject(stream)], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  } catch (err) {
    if ((await streamInfo(jsm, name)) === undefined) throw err;
  }
}

interface Mover {
  loop: PullLoop;
}

/**
 * One mover per delay stream per connection, started when a pipeline of that stream first consumes and
 * kept until the connection stops (moving a due message into a paused pipeline's stream is harmless).
 */
export class DelayMovers {
  private readonly movers = new Map<string, Mover>();

  constructor(private readonly conn: NatsLink) {}

  acquire(stream: string): void {
    if (this.movers.has(stream)) return;
    const logger = this.conn.logger.child({ delay_stream: delayStreamName(stream) });
    const loop: PullLoop = new PullLoop({
      conn: this.conn,
      logger,
      limit: 256,
      consumer: (live) => moverConsumer(live, stream),
      onMessage: (m) => void this.move(live(this.conn), m, loop, logger),
      onError: () => undefined,
    });
    this.movers.set(stream, { loop });
    loop.start();
  }

  onConnected(_live: LiveNats): void {
    for (const m of this.movers.values()) m.loop.poke();
  }

  onDisconnected(): void {
    for (const m of this.movers.values()) m.loop.poke();
  }

  async stopAll(): Promise<void> {
    const all = [...this.movers.values()];
    this.movers.clear();
    await Promise.all(all.map((m) => m.loop.stop()));
  }

  private async move(liveNow: LiveNats | undefined, m: JsMsg, loop: PullLoop, logger: NatsLink['logger']): Promise<void> {
    try {
      const due = Number(m.headers?.get(DUE_HEADER) ?? '0');
      const target = m.headers?.get(TARGET_HEADER) ?? '';
      const wait = due - Date.now();
      if (wait > 5) {
        m.nak(wait);
        return;
      }
      if (target === '' || liveNow === undefined) {
        if (target === '') {
          logger.warn({ seq: m.seq }, 'delayed message without a target subject: dropped');
          m.term();
        } else m.nak(1000);
        return;
      }
      const h = natsHeaders();
      let msgID: string | undefined;
      for (const [k, values] of m.headers ?? []) {
        if (k === DUE_HEADER || k === TARGET_HEADER) continue;
        if (k === MSG_ID_HEADER) {
          msgID = values[0];
          continue;
        }
        for (const v of values) h.append(k, v);
      }
      await liveNow.js.publish(target, m.data, { headers: h, ...(msgID === undefined ? {} : { msgID }) });
      m.ack();
    } catch (err) {
      logger.warn({ err: errorMessage(err), seq: m.seq }, 'delayed message not moved yet: retrying in 1s');
      try {
        m.nak(1000);
      } catch {
        // the server redelivers it after ack_wait
      }
    } finally {
      loop.release();
    }
  }
}

function live(conn: NatsLink): LiveNats | undefined {
  return conn.liveConnection();
}

async function moverConsumer(live: LiveNats, stream: string): Promise<Consumer> {
  const name = delayStreamName(stream);
  // no delay stream (declare: false and nobody made one): nothing to move; checked again later
  if ((await streamInfo(live.jsm, name)) === undefined) throw new Error(`no delay stream ${name}`);
  if ((await consumerInfo(live.jsm, name, MOVER)) === undefined) {
    try {
      await live.jsm.consumers.add(name, { durable_name: MOVER, ack_policy: AckPolicy.Explicit, ack_wait: nanos(30_000), max_ack_pending: -1, max_deliver: -1 });
    } catch (err) {
      if ((await consumerInfo(live.jsm, name, MOVER)) === undefined) throw err;
    }
  }
  return live.js.consumers.get(name, MOVER);
}
