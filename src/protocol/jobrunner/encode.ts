// NDJSON framing for protocol v1: encodes frames to one line each.
// Pure, no I/O. Job frames are assembled by hand (fixed key order, RawJson payloads spliced verbatim)
// because this runs once per message on the hot path (issue 7).

import type { JobFrame, ToWorkerFrame } from './frames.js';
import { RawJson } from '../payload.js';

const STOP_LINE = '{"type":"stop"}\n';

/** One frame as one line of JSON ending in `\n`. The output never contains another raw newline. */
export function encodeFrame(frame: ToWorkerFrame): string {
  switch (frame.type) {
    case 'job':
      return encodeJob(frame);
    case 'stop':
      return STOP_LINE;
    default: {
      const never: never = frame;
      throw new TypeError(`cannot encode frame type ${String((never as { type: unknown }).type)}`);
    }
  }
}

function encodeJob(f: JobFrame): string {
  const payload = f.payload instanceof RawJson ? f.payload.text : JSON.stringify(f.payload === undefined ? null : f.payload);
  let line =
    '{"type":"job","id":' +
    JSON.stringify(f.id) +
    ',"job":' +
    JSON.stringify(f.job) +
    ',"pipeline":' +
    JSON.stringify(f.pipeline) +
    ',"payload":' +
    payload +
    ',"encoding":"' +
    f.encoding +
    '","headers":' +
    JSON.stringify(f.headers) +
    ',"attempt":' +
    String(f.attempt);
  if (f.deadline !== undefined) line += ',"deadline":"' + f.deadline + '"';
  const m = f.meta;
  line += ',"meta":{"driver":' + JSON.stringify(m.driver) + ',"queue":' + JSON.stringify(m.queue) + ',"message_id":' + JSON.stringify(m.message_id) + ',"redelivered":' + (m.redelivered ? 'true' : 'false') + '}';
  if (f.trace !== undefined) line += ',"trace":' + JSON.stringify(f.trace);
  return line + '}\n';
}
