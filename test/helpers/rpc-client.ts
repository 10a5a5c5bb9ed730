// A goridge RPC client for tests, written from the protocol's facts (docs/rpc.md), not from the server's
// code: frames with options (sequence, method length), payload = method + body, protobuf bodies encoded
// with protobufjs straight from schemas/proto/jobs.v1.proto. Several calls may be in flight.

import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { FrameDecoder, encodeParts, type Frame } from '../../src/protocol/goridge/frame.js';
import { ROOT } from './daemon.js';

export const CODEC_PROTO = 0x80;
export const CODEC_JSON = 0x08;
export const ERROR = 0x40;

const root = new protobuf.Root().loadSync(join(ROOT, 'schemas/proto/jobs.v1.proto'), { keepCase: true });
export const proto = (name: string): protobuf.Type => root.lookupType(`jobs.v1.${name}`);

export class RpcError extends Error {}

export interface RpcAnswer {
  frame: Frame;
  method: string;
  body: Buffer;
}

export class RpcClient {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (a: RpcAnswer) => void; reject: (e: Error) => void }>();
  readonly errors: string[] = [];
  private constructor(readonly socket: Socket) {
    const decoder = new FrameDecoder({
      frame: (frame) => {
        const seq = frame.options[0] as number;
        const w = this.waiting.get(seq);
        const methodLength = frame.options[1] as number;
        const answer = { frame, method: frame.payload.toString('utf8', 0, methodLength), body: frame.payload.subarray(methodLength) };
        if (!w) {
          this.errors.push(answer.body.toString('utf8'));
          return;
        }
        this.waiting.delete(seq);
        if (frame.flags & ERROR) w.reject(new RpcError(answer.body.toString('utf8')));
        else w.resolve(answer);
      },
      error: (message) => this.errors.push(`decoder: ${message}`),
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new RpcError('connection closed'));
      this.waiting.clear();
    });
  }

  /** address: tcp://host:port */
  static async open(address: string): Promise<RpcClient> {
    const m = /^tcp:\/\/(.+):(\d+)$/.exec(address);
    if (!m) throw new Error(`not a tcp address: ${address}`);
    const socket = connect(Number(m[2]), m[1] as string);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RpcClient(socket);
  }

  /** raw call: the body as given, with the codec flag given */
  callRaw(method: string, body: Uint8Array, flags = CODEC_PROTO): Promise<RpcAnswer> {
    const seq = ++this.seq;
    const name = Buffer.from(method);
    const data = Buffer.from(body);
    const p = new Promise<RpcAnswer>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    this.socket.write(encodeParts(flags, [seq, name.length], [name, data], name.length + data.length));
    return p;
  }

  /** a protobuf call: `request` is encoded as jobs.v1.<requestType>; the answer decoded as jobs.v1.<answerType> */
  async call(method: string, requestType: string, request: Record<string, unknown>, answerType: string): Promise<Record<string, any>> {
    const t = proto(requestType);
    const answer = await this.callRaw(method, t.encode(t.fromObject(request)).finish());
    const a = proto(answerType);
    return a.toObject(a.decode(answer.body), { longs: Number, arrays: true, defaults: true, bytes: Buffer });
  }

  /** writes bytes as they are (bad frames) */
  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }
}
