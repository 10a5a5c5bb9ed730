// Delayed pushes through the server's own message scheduling (ADR-51, nats-server 2.12 and later). A
// delayed job is stored in the pipeline's own stream on a subject of its own,
// _jobrunner.schedule.<stream>.<uuid>, with `Nats-Schedule: @at <due time>` and `Nats-Schedule-Target:
// <pipeline subject>`; when due, the server publishes its body and headers to the target subject (adding
// Nats-Scheduler and Nats-Schedule-Next: purge, dropping Nats-Msg-Id) and removes the schedule in the same
// step. Nothing of jobrunner needs to run for that, so a daemon restart or a server restart loses nothing.
// The stream must allow schedules and take the schedule subjects: jobrunner creates its streams so on a
// 2.12+ server, and never changes an existing one (such a stream keeps the delay stream, ./delay.ts).

import { randomUUID } from 'node:crypto';
import type { ConsumerInfo, StreamInfo } from '@nats-io/jetstream';
import { subjectCovered } from './topology.js';

/** the first nats-server with message scheduling */
export const SCHEDULES_SINCE: readonly [number, number] = [2, 12];

/** true when the server's announced version (e.g. "2.15.1", "2.12.0-RC.3") is 2.12 or later */
export function serverSchedules(version: string): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version.trim());
  if (m === null) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const [wantMajor, wantMinor] = SCHEDULES_SINCE;
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

/** the subjects a stream made by jobrunner takes for its schedules */
export function scheduleSubjects(stream: string): string {
  return `_jobrunner.schedule.${stream}.>`;
}

/** a new schedule's own subject (one schedule per subject: a second on the same subject replaces the first) */
export function newScheduleSubject(stream: string): string {
  return `_jobrunner.schedule.${stream}.${randomUUID()}`;
}

export type DelayPath = { native: true } | { native: false; reason: string };

/**
 * Which way a delayed push of this pipeline goes on this server: native scheduling when the server is
 * 2.12+, the stream allows schedules and takes jobrunner's schedule subjects, and the pipeline's consumer
 * does not take them too (it would receive the schedules as jobs); else the delay stream, with the reason.
 */
export function delayPath(serverVersion: string, stream: StreamInfo, consumer: ConsumerInfo | undefined): DelayPath {
  const name = stream.config.name;
  if (!serverSchedules(serverVersion)) return { native: false, reason: `nats-server ${serverVersion} has no message scheduling (${SCHEDULES_SINCE.join('.')}+)` };
  if (stream.config.allow_msg_schedules !== true) return { native: false, reason: `stream \`${name}\` does not allow message schedules (allow_msg_schedules), and jobrunner never changes an existing stream` };
  const probe = newScheduleSubject(name);
  if (!(stream.config.subjects ?? []).some((s) => subjectCovered(probe, s))) {
    return { native: false, reason: `stream \`${name}\` does not take the schedule subjects \`${scheduleSubjects(name)}\`, and jobrunner never changes an existing stream` };
  }
  const filters = [consumer?.config.filter_subject ?? '', ...(consumer?.config.filter_subjects ?? [])].filter((f) => f !== '');
  if (consumer !== undefined && (filters.length === 0 || filters.some((f) => subjectCovered(probe, f)))) {
    return { native: false, reason: `consumer \`${consumer.name}\` would receive the schedules themselves (its filter takes \`${scheduleSubjects(name)}\`)` };
  }
  return { native: true };
}
