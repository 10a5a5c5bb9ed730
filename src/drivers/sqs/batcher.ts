// Gathers the SQS calls one loop pass makes for a queue into batch requests: deletes (acks) into
// DeleteMessageBatch, visibility changes (retries, releases, extensions) into ChangeMessageVisibilityBatch,
// sends into SendMessageBatch, 10 entries a request. Each caller gets its own entry's outcome.

import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type BatchResultErrorEntry,
} from '@aws-sdk/client-sqs';
import type { SendEntry } from './codec.js';

/** what a batch needs of the pipeline: the client, the queue URL, where request outcomes go */
export interface BatchHost {
  send<T>(command: object, what: string): Promise<T>;
  queueUrl(): string;
}

interface Pending<E> {
  entry: E;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** An entry SQS refused (its Code and Message), as an Error with the code kept for callers. */
export class EntryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'EntryError';
  }
}

/** SQS's limit on one batch request's total payload (the newer 1 MiB limit is not everywhere). */
const MAX_BATCH_BYTES = 256 * 1024;
const MAX_ENTRIES = 10;

export class Batcher {
  private deletes: Pending<string>[] = [];
  private visibility: Pending<{ handle: string; seconds: number }>[] = [];
  private sends: Pending<SendEntry>[] = [];
  private scheduled = false;

  constructor(private readonly host: BatchHost) {}

  delete(handle: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.deletes.push({ entry: handle, resolve, reject });
      this.schedule();
    });
  }

  changeVisibility(handle: string, seconds: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.visibility.push({ entry: { handle, seconds }, resolve, reject });
      this.schedule();
    });
  }

  send(entry: SendEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sends.push({ entry, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const deletes = this.deletes;
    const visibility = this.visibility;
    const sends = this.sends;
    this.deletes = [];
    this.visibility = [];
    this.sends = [];
    for (const chunk of chunks(deletes)) {
      void this.run(chunk, (url) => new DeleteMessageBatchCommand({ QueueUrl: url, Entries: chunk.map((p, i) => ({ Id: String(i), ReceiptHandle: p.entry })) }), 'DeleteMessageBatch');
    }
    for (const chunk of chunks(visibility)) {
      void this.run(
        chunk,
        (url) =>
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: url,
            Entries: chunk.map((p, i) => ({ Id: String(i), ReceiptHandle: p.entry.handle, VisibilityTimeout: p.entry.seconds })),
          }),
        'ChangeMessageVisibilityBatch',
      );
    }
    for (const chunk of sendChunks(sends)) {
      const one = chunk[0];
      if (chunk.length === 1 && one !== undefined) {
        // alone (or too large to share a request): the plain call
        this.host.send(new SendMessageCommand({ QueueUrl: this.host.queueUrl(), ...one.entry }), 'SendMessage').then(
          () => one.resolve(),
          (err: unknown) => one.reject(err instanceof Error ? err : new Error(String(err))),
        );
        continue;
      }
      void this.run(chunk, (url) => new SendMessageBatchCommand({ QueueUrl: url, Entries: chunk.map((p, i) => ({ Id: String(i), ...p.entry })) }), 'SendMessageBatch');
    }
  }

  private async run<E>(chunk: Pending<E>[], make: (url: string) => object, what: string): Promise<void> {
    let out: { Failed?: BatchResultErrorEntry[] };
    try {
      out = await this.host.send<{ Failed?: BatchResultErrorEntry[] }>(make(this.host.queueUrl()), what);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const p of chunk) p.reject(e);
      return;
    }
    const failed = new Map<string, BatchResultErrorEntry>();
    for (const f of out.Failed ?? []) if (f.Id !== undefined) failed.set(f.Id, f);
    chunk.forEach((p, i) => {
      const f = failed.get(String(i));
      if (f === undefined) p.resolve();
      else p.reject(new EntryError(f.Code ?? 'Failed', f.Message ?? `${what} refused the entry`));
    });
  }
}

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_ENTRIES) out.push(items.slice(i, i + MAX_ENTRIES));
  return out;
}

/** Send entries in requests of up to 10 entries and 256 KiB; a larger entry goes alone. */
function sendChunks(items: Pending<SendEntry>[]): Pending<SendEntry>[][] {
  const out: Pending<SendEntry>[][] = [];
  let cur: Pending<SendEntry>[] = [];
  let bytes = 0;
  for (const p of items) {
    const size = entrySize(p.entry);
    if (cur.length > 0 && (cur.length >= MAX_ENTRIES || bytes + size > MAX_BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function entrySize(e: SendEntry): number {
  let n = Buffer.byteLength(e.MessageBody, 'utf8');
  for (const [k, v] of Object.entries(e.MessageAttributes)) {
    n += Buffer.byteLength(k) + Buffer.byteLength(v.DataType ?? '');
    if (v.StringValue !== undefined) n += Buffer.byteLength(v.StringValue);
    if (v.BinaryValue !== undefined) n += v.BinaryValue.length;
  }
  return n;
}
