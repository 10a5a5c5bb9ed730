// Worker protocol v1 frame types (SPEC §4, docs/protocol.md, schemas/worker-frames.schema.json).
// Pure: no I/O here.

export type Payload = unknown;
export type Encoding = 'json' | 'text' | 'base64';

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

export type FromWorkerFrame = AckFrame | NackFrame | PublishFrame | TouchFrame;
