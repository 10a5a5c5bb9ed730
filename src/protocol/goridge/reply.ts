// A worker's answer to a job (docs/protocol-goridge.md), as spiral/roadrunner-jobs' ReceivedTask writes
// it: an ERROR frame, or one option (the context length) and a body {"type":N,"data":{...}}; or the
// restart request, context {"stop":true} with an empty body. Untrusted input, checked. Pure, no I/O.

import { CONTROL, ERROR, type Frame } from './frame.js';

type Headers = Record<string, string[]>;

export type Reply =
  | { kind: 'ack' }
  /** requeue true: again after delaySeconds with headers; absent: the retry policy decides */
  | { kind: 'nack'; error: string; requeue?: true; delaySeconds?: number; headers?: Headers }
  /** the worker asks to be replaced; the job goes back without spending an attempt */
  | { kind: 'restart' }
  /** the frame breaks the protocol: what was wrong */
  | { kind: 'invalid'; error: string };

/** The reply types (spiral/roadrunner-jobs Task\Type; RoadRunner's jobs protocol). */
const COMPLETE = 0; // deprecated SUCCESS
const FAIL = 1; // deprecated ERROR
const ACK = 2;
const NACK = 3;
const REQUEUE = 4;

export function parseReply(frame: Frame): Reply {
  if ((frame.flags & ERROR) !== 0) {
    const text = frame.payload.toString('utf8');
    return { kind: 'nack', error: text === '' ? 'the worker sent an error frame with no text' : text };
  }
  if ((frame.flags & CONTROL) !== 0) return { kind: 'invalid', error: `a control frame (${cut(frame.payload.toString('utf8'))}) where the answer to a job was due` };
  if (frame.stream !== 0) return { kind: 'invalid', error: `an answer with stream flags 0x${frame.stream.toString(16)} (streamed answers are not supported)` };
  if (frame.options.length !== 1) return { kind: 'invalid', error: `an answer with ${frame.options.length} options (exactly 1, the context length, is expected)` };
  const contextLength = frame.options[0] as number;
  if (contextLength > frame.payload.length) return { kind: 'invalid', error: `an answer whose context length ${contextLength} is over its payload length ${frame.payload.length}` };
  const context = frame.payload.subarray(0, contextLength);
  const body = frame.payload.subarray(contextLength);
  if (body.length === 0) {
    if (contextLength > 0 && isStopRequest(context.toString('utf8'))) return { kind: 'restart' };
    return { kind: 'invalid', error: contextLength > 0 ? `an answer with an empty body and the context ${cut(context.toString('utf8'))}` : 'an empty answer' };
  }
  return parseBody(body.toString('utf8'));
}

function isStopRequest(text: string): boolean {
  if (text === '{"stop":true}') return true;
  try {
    const v = JSON.parse(text) as unknown;
    return isObject(v) && Object.keys(v).length === 1 && v['stop'] === true;
  } catch {
    return false;
  }
}

/** The body {"type":N,"data":...} */
export function parseBody(text: string): Reply {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: 'invalid', error: `an answer body that is not JSON: ${cut(text)}` };
  }
  if (!isObject(v)) return { kind: 'invalid', error: `an answer body that is not a JSON object: ${cut(text)}` };
  const type = v['type'];
  if (type !== COMPLETE && type !== FAIL && type !== ACK && type !== NACK && type !== REQUEUE) {
    return { kind: 'invalid', error: `an answer with "type" ${cut(JSON.stringify(type) ?? 'missing')} (0 to 4 are known)` };
  }
  // PHP's json_encode writes an empty array as [] whichever it was meant to be
  const raw = v['data'];
  let data: Record<string, unknown>;
  if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) data = {};
  else if (isObject(raw)) data = raw;
  else return { kind: 'invalid', error: `an answer whose "data" is ${cut(JSON.stringify(raw))}, not an object` };
  if (type === COMPLETE || type === ACK) return { kind: 'ack' };

  const message = data['message'];
  if (message !== undefined && typeof message !== 'string') return { kind: 'invalid', error: `an answer whose "data.message" is not a string` };
  const requeue = data['requeue'];
  if (requeue !== undefined && typeof requeue !== 'boolean') return { kind: 'invalid', error: `an answer whose "data.requeue" is not a boolean` };
  const delay = data['delay_seconds'];
  if (delay !== undefined && !(typeof delay === 'number' && Number.isInteger(delay) && delay >= 0)) {
    return { kind: 'invalid', error: `an answer whose "data.delay_seconds" is not a whole number >= 0` };
  }
  const headers = toHeaders(data['headers']);
  if (headers === false) return { kind: 'invalid', error: `an answer whose "data.headers" is not an object of string lists` };

  const error = message !== undefined && message !== '' ? message : type === REQUEUE ? 'requeued by the worker' : 'failed by the worker';
  if (type === REQUEUE || requeue === true) {
    const out: Reply = { kind: 'nack', error, requeue: true };
    if (delay !== undefined && delay > 0) out.delaySeconds = delay;
    if (headers !== undefined) out.headers = headers;
    return out;
  }
  return { kind: 'nack', error };
}

/** undefined: none (absent, null or PHP's []); false: not headers */
function toHeaders(v: unknown): Headers | undefined | false {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return undefined;
  if (!isObject(v)) return false;
  const out: Headers = {};
  for (const [k, list] of Object.entries(v)) {
    // ReceivedTask sends back every header it was given, the rr_* ones put in the context too: those are
    // the message's own wire fields (set again when the job is published), never headers of their own
    if (RR_HEADERS.has(k)) continue;
    // PHP's withHeader takes a string or a list; a list with keys other than 0..n-1 is encoded as an object
    const items = Array.isArray(list) ? list : typeof list === 'string' ? [list] : isObject(list) ? Object.values(list) : undefined;
    if (items === undefined || !items.every((s) => typeof s === 'string')) return false;
    out[k] = items as string[];
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

const RR_HEADERS: ReadonlySet<string> = new Set(['rr_id', 'rr_job', 'rr_pipeline', 'rr_headers', 'rr_delay', 'rr_priority', 'rr_auto_ack']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function cut(s: string): string {
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
}
