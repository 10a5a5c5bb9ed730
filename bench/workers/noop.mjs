// The leanest correct protocol v1 worker in Node.js, for `npm run bench`: acks every job at once.
// Reads stdin in chunks, answers all the jobs of a chunk in one write. Holding nothing (a job is
// answered before the next chunk is read), it can take any number of jobs at once: its ready frame
// announces jobrunner's own cap, JOBRUNNER_MAX_CONCURRENCY.
// BENCH_LATENCY_DIR: record (now - payload.ts) per job, in ms, written to a file there on stop.

import { writeFileSync } from 'node:fs';

const latencyDir = process.env.BENCH_LATENCY_DIR;
const samples = latencyDir ? [] : undefined;
const origin = performance.timeOrigin;
let rest = '';
let stopping = false;

function finish() {
  if (stopping) return;
  stopping = true;
  process.stdin.pause();
  if (samples && samples.length > 0) writeFileSync(`${latencyDir}/node-${process.pid}.txt`, samples.join('\n') + '\n');
  // nothing is held: leaving is stopping (stdout flushes before exit)
  process.exitCode = 0;
  process.stdin.destroy();
}

process.stdout.write(JSON.stringify({ type: 'ready', max_concurrency: Number(process.env.JOBRUNNER_MAX_CONCURRENCY) || 1 }) + '\n');
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const text = rest + chunk;
  let start = 0;
  let nl = text.indexOf('\n');
  let out = '';
  while (nl !== -1) {
    if (nl > start) {
      const frame = JSON.parse(text.slice(start, nl));
      if (frame.type === 'job') {
        if (samples) {
          const ts = frame.payload?.ts;
          if (typeof ts === 'number') samples.push((origin + performance.now() - ts).toFixed(3));
        }
        out += '{"type":"ack","id":' + JSON.stringify(frame.id) + '}\n';
      } else if (frame.type === 'stop') {
        if (out !== '') process.stdout.write(out);
        finish();
        return;
      }
    }
    start = nl + 1;
    nl = text.indexOf('\n', start);
  }
  rest = text.slice(start);
  if (out !== '') process.stdout.write(out);
});
process.stdin.on('end', finish);
