// Declaring a nats pipeline's stream and durable consumer. An existing stream is never rewritten: its
// subjects are only checked (RoadRunner's driver overwrites them, which breaks every other user of the
// stream). A missing consumer is created once; an existing one is used as it is, so a restart resumes
// where it left and `deliver_new` only matters on first creation.

import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerInfo, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import type { NatsPipelineOptions } from './options.js';
import { JobrunnerError, errorMessage } from '../../shared/errors.js';

/** nanoseconds, as the JetStream API counts durations */
export function nanos(ms: number): number {
  return Math.round(ms * 1_000_000);
}

/** true when `subject` (possibly with wildcards) is entirely covered by `filter` (NATS subject matching). */
export function subjectCovered(subject: string, filter: string): boolean {
  const s = subject.split('.');
  const f = filter.split('.');
  for (let i = 0; i < f.length; i++) {
    const ft = f[i] as string;
    if (ft === '>') return i < s.length;
    const st = s[i];
    if (st === undefined) return false;
    if (ft === '*') {
      if (st === '>') return false;
      continue;
    }
    if (ft !== st) return false;
  }
  return s.length === f.length;
}

function notFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 404 || err.code === 10059 || err.code === 10014;
  return /not found/i.test(errorMessage(err));
}

/** The stream's info, or undefined when it does not exist. */
export async function streamInfo(jsm: JetStreamManager, stream: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
}

export async function consumerInfo(jsm: JetStreamManager, stream: string, consumer: string): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, consumer);
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
}

/**
 * Creates the stream if missing (declare: true); checks an existing one covers the subject. With
 * `schedules` (the schedule subjects, on a 2.12+ server) a stream created now allows message schedules and
 * takes those subjects too; an existing stream is used as it is.
 */
export async function ensureStream(jsm: JetStreamManager, pipeline: string, o: NatsPipelineOptions, schedules?: string): Promise<StreamInfo> {
  let info = await streamInfo(jsm, o.stream);
  if (info === undefined) {
    if (!o.declare) {
      throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: stream \`${o.stream}\` does not exist and declare is false: create it (nats stream add ${o.stream} --subjects '${o.subject}') or set declare: true`);
    }
    try {
      info = await jsm.streams.add(
        schedules === undefined
          ? { name: o.stream, subjects: [o.subject] }
          : // the server turns roll-ups on for schedules by itself (a schedule is a roll-up of its subject); said here so a pedantic server agrees
            { name: o.stream, subjects: [o.subject, schedules], allow_msg_schedules: true, allow_rollup_hdrs: true },
      );
    } catch (err) {
      // another daemon created it first: use it like any existing stream
      info = await streamInfo(jsm, o.stream);
      if (info === undefined) throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: cannot create stream \`${o.stream}\` for subject \`${o.subject}\`: ${errorMessage(err)}`, { cause: err });
    }
  }
  const subjects = info.config.subjects ?? [];
  if (!subjects.some((s) => subjectCovered(o.subject, s))) {
    throw new JobrunnerError(
      'E_BROKER_DECLARE',
      `pipeline ${pipeline}: stream \`${o.stream}\` exists with subjects [${subjects.join(', ')}], which do not take subject \`${o.subject}\`; ` +
        `jobrunner never rewrites an existing stream: add the subject to it (nats stream edit ${o.stream} --subjects ...) or use another stream or subject`,
    );
  }
  return info;
}

export interface ConsumerWant {
  /** the durable name */
  name: string;
  ackWaitMs: number;
  maxAckPending: number;
  deliverNew: boolean;
}

/** Creates the durable consumer if missing (declare: true), or checks the existing one. */
export async function ensureConsumer(jsm: JetStreamManager, pipeline: string, o: NatsPipelineOptions, want: ConsumerWant): Promise<ConsumerInfo> {
  let info = await consumerInfo(jsm, o.stream, want.name);
  if (info === undefined) {
    if (!o.declare) {
      throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: consumer \`${want.name}\` does not exist on stream \`${o.stream}\` and declare is false: create it (a durable pull consumer with explicit acks) or set declare: true`);
    }
    const config: Partial<ConsumerConfig> = {
      durable_name: want.name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(want.ackWaitMs),
      max_ack_pending: want.maxAckPending,
      deliver_policy: want.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
      filter_subject: o.subject,
      // jobrunner counts attempts itself and dead-letters at max_attempts: the server's max_deliver would
      // park a message where nobody sees it
      max_deliver: -1,
    };
    try {
      info = await jsm.consumers.add(o.stream, config);
    } catch (err) {
      info = await consumerInfo(jsm, o.stream, want.name);
      if (info === undefined) throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: cannot create consumer \`${want.name}\` on stream \`${o.stream}\`: ${errorMessage(err)}`, { cause: err });
    }
  }
  const c = info.config;
  if (c.ack_policy !== AckPolicy.Explicit) {
    throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: consumer \`${want.name}\` on stream \`${o.stream}\` has ack_policy ${String(c.ack_policy)}; jobrunner needs explicit acks (delete it or name another consumer)`);
  }
  if (c.deliver_subject !== undefined && c.deliver_subject !== '') {
    throw new JobrunnerError('E_BROKER_DECLARE', `pipeline ${pipeline}: consumer \`${want.name}\` on stream \`${o.stream}\` is a push consumer; jobrunner needs a pull consumer (delete it or name another consumer)`);
  }
  return info;
}
