// The jobs.v1 protobuf messages (schemas/proto/jobs.v1.proto), loaded once with protobufjs, and their
// decoding from / encoding to a call's body in the codec the caller chose (protobuf, or JSON with the
// .proto's field names). Pure apart from reading the .proto file on first use.

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { packageRoot } from '../config/schema.js';
import { JobrunnerError } from '../shared/errors.js';
import type { BodyCodec } from './frames.js';

export type MessageName = 'PushRequest' | 'PushBatchRequest' | 'DeclareRequest' | 'Pipelines' | 'Stats' | 'Empty';

let root: protobuf.Root | undefined;

function type(name: MessageName): protobuf.Type {
  // keepCase: fields keep the .proto's names (auto_ack), as PHP's and Go's JSON use them
  root ??= new protobuf.Root().loadSync(join(packageRoot(), 'schemas', 'proto', 'jobs.v1.proto'), { keepCase: true });
  return root.lookupType(`jobs.v1.${name}`);
}

/** what toObject gives: int64 as numbers, bytes as Buffers, empty repeated/map fields present */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, bytes: Buffer, arrays: true, objects: true, defaults: true };

/** A call's body as a plain object of the message's fields; E_RPC when it does not decode. */
export function decodeBody<T>(name: MessageName, codec: BodyCodec, body: Buffer): T {
  const t = type(name);
  try {
    switch (codec) {
      case 'proto':
        return t.toObject(t.decode(body), TO_OBJECT) as T;
      case 'json': {
        const text = body.toString('utf8').trim();
        const value: unknown = text === '' ? {} : JSON.parse(text);
        const problem = t.verify(value as Record<string, unknown>);
        if (problem) throw new Error(problem);
        return t.toObject(t.fromObject(value as Record<string, unknown>), TO_OBJECT) as T;
      }
      case 'raw':
        throw new Error('the jobs methods take a protobuf (0x80) or JSON (0x08) body, not raw bytes');
      default: {
        const never: never = codec;
        throw new Error(`unknown codec ${String(never)}`);
      }
    }
  } catch (err) {
    throw new JobrunnerError('E_RPC', `the body is not a jobs.v1.${name}: ${(err as Error).message}`);
  }
}

/** A message for the answer, in the caller's codec. */
export function encodeBody(name: MessageName, codec: BodyCodec, value: Record<string, unknown>): Uint8Array {
  const t = type(name);
  const message = t.fromObject(value);
  if (codec === 'json') return Buffer.from(JSON.stringify(t.toObject(message, { longs: Number, bytes: String, defaults: true })), 'utf8');
  return t.encode(message).finish();
}
