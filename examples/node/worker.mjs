#!/usr/bin/env node
// jobrunner reference worker (protocol v1) in Node.js, no dependencies.
// Run it through jobrunner:  server: { command: "node examples/node/worker.mjs" }
// By hand:  echo '{"type":"job","id":"1","job":"SendEmail","pipeline":"emails","payload":{"to":"a@b.c"}}' | node examples/node/worker.mjs
// Frames arrive on stdin, one JSON object per line; replies go to stdout; stderr is the log.
// Payload conventions of the examples: {"fail":"reason"} nacks, {"delay_retry":N} asks for one retry after N seconds,
// {"follow_up":{"job":"X","payload":{...}}} publishes a follow-up job to the same pipeline, anything else acks.
import { createInterface } from 'node:readline';

// Jobs are worked on concurrently (the work here is asynchronous): the ready frame says how many this
// worker takes at once; jobrunner sends at most that many (capped by its pool.max_concurrency).
const CAPACITY = 64;
const send = (frame) => process.stdout.write(JSON.stringify(frame) + '\n');
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
console.error(`worker ready: pipeline ${process.env.JOBRUNNER_PIPELINE ?? '?'}, max_concurrency ${CAPACITY} (jobrunner's cap: ${process.env.JOBRUNNER_MAX_CONCURRENCY ?? '?'})`);
send({ type: 'ready', max_concurrency: CAPACITY });

async function handle(frame) {
  const { id, job, pipeline } = frame;
  const p = frame.payload !== null && typeof frame.payload === 'object' ? frame.payload : {};
  if (p.fail !== undefined) {
    console.error(`failed ${job} ${id}: ${p.fail}`);
    send({ type: 'nack', id, error: String(p.fail) });
  } else if (p.delay_retry !== undefined && (frame.attempt ?? 1) <= 1) {
    console.error(`retrying ${job} ${id} in ${p.delay_retry}s`);
    send({ type: 'nack', id, error: 'retry requested', requeue: true, delay: Number(p.delay_retry) });
  } else {
    if (p.follow_up) send({ type: 'publish', id, pipeline, job: p.follow_up.job ?? 'FollowUp', payload: p.follow_up.payload ?? {} });
    console.error(`processed ${job} ${id} ${JSON.stringify(frame.payload)}`);
    send({ type: 'ack', id });
  }
}

const held = new Set();
for await (const line of lines) {
  if (line.trim() === '') continue;
  const frame = JSON.parse(line);
  if (frame.type === 'stop') break; // finish what is held (below), then leave
  if (frame.type !== 'job') continue; // ignore frame types a later protocol may add
  const work = handle(frame).catch((err) => send({ type: 'nack', id: frame.id, error: String(err?.message ?? err) }));
  held.add(work);
  work.finally(() => held.delete(work));
}
await Promise.all(held);
process.stdin.destroy(); // let the process end even if jobrunner keeps our stdin open
