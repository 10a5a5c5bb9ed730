// Test fixture: for each job, publishes what arrived (encoding, payload type, byte length and sha256 of the
// decoded body) to the "echo" pipeline, then acks. Shows how each kind of body reaches a worker.
import { createHash } from 'node:crypto';
import { send, serve } from '../../fixtures/workers/_lib.mjs';

serve((job) => {
  let bytes;
  if (job.encoding === 'base64') bytes = Buffer.from(job.payload, 'base64');
  else if (job.encoding === 'text') bytes = Buffer.from(job.payload, 'utf8');
  else bytes = Buffer.from(JSON.stringify(job.payload), 'utf8');
  const report = { n: job.id, encoding: job.encoding, type: typeof job.payload, length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  send({ type: 'publish', id: job.id, pipeline: 'echo', job: 'Report', payload: report });
  send({ type: 'ack', id: job.id });
});
