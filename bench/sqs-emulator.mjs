// The SQS emulator for `npm run bench:sqs`, in its own process so its CPU is nobody else's: fauxqs on
// 127.0.0.1, port from the OS; sends its port to the parent over IPC, runs until SIGTERM.
import { buildApp } from 'fauxqs';

const app = buildApp({ logger: false, host: '127.0.0.1' });
await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ port: app.server.address().port });
process.once('SIGTERM', async () => {
  await app.close();
  process.exit(0);
});
