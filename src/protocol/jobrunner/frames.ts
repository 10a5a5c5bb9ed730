// Worker protocol v1 frame types (SPEC §4, docs/protocol.md, schemas/worker-frames.schema.json).
// Pure: no I/O here. Only src/protocol/jobrunner/ sees these; the pool sees codec.ts's neutral frames.

import type { Encoding } from '../payload.js';

export type { Encoding };
export type Payload = unknown;

export interface JobFrame {
  type: 'job';
  id: string;
  job: string;
  pipeline: string;
  payload: Payload;
  encoding: Encoding;
  headers: Record<string, string[]>;
  attempt: number;
  /** ISO time after which the job is killed (exec_ttl), absent when there is none */
  deadline?: string;
  meta: { driver: string; queue: string; message_id: string; redelivered: boolean };
  trace?: { traceparent: string };
}

export interface StopFrame {
  type: 'stop';
}

export type ToWorkerFrame = JobFrame | StopFrame;

/** optional, first: the worker is up; it can work on max_concurrency jobs at once (default 1) */
export interface ReadyFrame {
  type: 'ready';
  max_concurrency?: number;
}
export interface AckFrame {
  type: 'ack';
  id: string;
}
export interface NackFrame {
  type: 'nack';
  id: string;
  error?: string;
  requeue?: boolean;
  /** seconds */
  delay?: number;
  headers?: Record<string, string[]>;
}
export interface PublishFrame {
  type: 'publish';
  id: string;
  pipeline: string;
  job: string;
  payload: Payload;
  /** how payload is to be turned into a body; json by default (text: a string as it is; base64: bytes) */
  encoding?: Encoding;
  headers?: Record<string, string[]>;
  /** seconds */
  delay?: number;
  priority?: number;
}
export interface TouchFrame {
  type: 'touch';
  id: string;
}

export type FromWorkerFrame = ReadyFrame | AckFrame | NackFrame | PublishFrame | TouchFrame;
