// Every rhea internal the amqp1 driver touches is listed in src/drivers/amqp1/rhea-gate.ts, checked once
// against the installed rhea, and reached only from there (and the patches it installs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PINNED_RHEA_VERSION, RHEA_INTERNALS, assertRheaInternals, missingRheaInternals } from '../../src/drivers/amqp1/rhea-gate.js';
import { ROOT } from '../helpers/daemon.js';

test('the rhea internals the driver uses, each one listed', () => {
  assert.deepEqual(
    RHEA_INTERNALS.map((i) => i.name),
    [
      'receiver.credit',
      'receiver.delivery_count',
      'sender.{credit, delivery_count}',
      'link.remote.attach',
      'session.incoming.{next_transfer_id, max_transfer_id, window}',
      'session.links, session.remote.handles, session.on_attach',
      'connection.remote.open',
      'connection.{socket, heartbeat_in, heartbeat_out, abort_idle}',
      'Incoming.prototype.on_transfer',
      'frames.read_frame via Transport.prototype.read',
      'message.{accepted, released, rejected, modified}',
      'log.js loggers',
    ],
  );
});

test(`the installed rhea is ${PINNED_RHEA_VERSION} and shows every internal as used`, () => {
  assert.deepEqual(missingRheaInternals(), []);
  assert.doesNotThrow(() => assertRheaInternals());
  const pinned = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['rhea'];
  assert.equal(pinned, PINNED_RHEA_VERSION, 'package.json pins the rhea the gate was checked against');
});

test('no other file of the amqp1 driver reaches into rhea\'s objects', () => {
  const dir = join(ROOT, 'src/drivers/amqp1');
  const own = new Set(['rhea-gate.ts', 'rhea-patches.ts', 'lean-decode.ts']);
  const privateField = /(?<!message)\.delivery_count\b|\.(credit|issue_flow|_register|incoming|heartbeat_in|heartbeat_out|abort_idle|links|handles)\b|remote\??\.(open|attach)/;
  const wrong: string[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts') && !own.has(n))) {
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (!line.trimStart().startsWith('//') && !line.trimStart().startsWith('*') && privateField.test(line)) wrong.push(`${f}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(wrong, []);
  assert.match('r.connection._register();', privateField, 'the pattern catches a private field');
});

test('importing the driver installs nothing: the gate opens at start()', async () => {
  const patches = await import('../../src/drivers/amqp1/rhea-patches.js');
  await import('../../src/drivers/amqp1/connection.js');
  assert.equal(patches.leanFramesInstalled(), false, 'lean frames installed at import');
});
