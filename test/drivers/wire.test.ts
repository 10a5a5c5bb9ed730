// Unit tests of the driver-neutral RoadRunner wire helpers (src/drivers/wire.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadHeaderError, NORMALISED_HEADER, attemptOf, decodeRrHeaders, encodeRrHeaders, headerValueToStrings, headersToStrings, idOf, jobNameOf, mergeHeaders, publishable } from '../../src/drivers/wire.js';

test('rr_headers encode to JSON bytes and decode back', () => {
  const h = { tenant: ['acme'], multi: ['a', 'b'] };
  const bytes = encodeRrHeaders(h);
  assert.ok(Buffer.isBuffer(bytes));
  assert.equal(bytes.toString('utf8'), '{"tenant":["acme"],"multi":["a","b"]}');
  assert.deepEqual(decodeRrHeaders(bytes), { ok: true, headers: h });
});

test('rr_headers decode: strings, Go null, empty, lenient values', () => {
  assert.deepEqual(decodeRrHeaders('{"a":["1"]}'), { ok: true, headers: { a: ['1'] } });
  assert.deepEqual(decodeRrHeaders(Buffer.from('null')), { ok: true, headers: {} });
  assert.deepEqual(decodeRrHeaders(Buffer.alloc(0)), { ok: true, headers: {} });
  assert.deepEqual(decodeRrHeaders('{"a":"x","n":[1,true]}'), { ok: true, headers: { a: ['x'], n: ['1', 'true'] } });
});

test('rr_headers that are not JSON are an error with a reason', () => {
  const bad = decodeRrHeaders(Buffer.from('{nope'));
  assert.equal(bad.ok, false);
  assert.match(!bad.ok ? bad.error : '', /^rr_headers is not JSON: /);
  const arr = decodeRrHeaders('[1]');
  assert.equal(arr.ok, false);
  assert.match(!arr.ok ? arr.error : '', /expected an object/);
  assert.equal(decodeRrHeaders(42).ok, false);
});

test('header values become strings like RoadRunner convHeaders', () => {
  assert.deepEqual(headerValueToStrings('x'), ['x']);
  assert.deepEqual(headerValueToStrings(5), ['5']);
  assert.deepEqual(headerValueToStrings(false), ['false']);
  assert.deepEqual(headerValueToStrings(Buffer.from('b')), ['b']);
  assert.deepEqual(headerValueToStrings(['a', 1, ['c']]), ['a', '1', 'c']);
  assert.deepEqual(headerValueToStrings(null), []);
  assert.deepEqual(headerValueToStrings({ '!': 'timestamp', value: 0 }), ['1970-01-01T00:00:00.000Z']);
  assert.deepEqual(headerValueToStrings({ '!': 'decimal', value: { places: 2, digits: 1234 } }), ['12.34']);
  assert.deepEqual(headerValueToStrings({ k: 1 }), ['{"k":1}']);
});

test('mergeHeaders appends values', () => {
  assert.deepEqual(mergeHeaders({ a: ['1'] }, { a: ['2'], b: ['3'] }), { a: ['1', '2'], b: ['3'] });
});

test('idOf: rr_id, then message_id, then a new id', () => {
  assert.equal(idOf({ rrId: 'r', messageId: 'm' }), 'r');
  assert.equal(idOf({ rrId: '', messageId: 'm' }), 'm');
  assert.equal(idOf({ messageId: 7 }), '7');
  assert.equal(idOf({}, () => 'new'), 'new');
  assert.match(idOf({}), /^[0-9a-f-]{36}$/);
});

test('jobNameOf: rr_job, type, pipeline job, pipeline name', () => {
  assert.equal(jobNameOf({ rrJob: 'J', type: 'T', pipelineJob: 'P', pipeline: 'p' }), 'J');
  assert.equal(jobNameOf({ type: 'T', pipelineJob: 'P', pipeline: 'p' }), 'T');
  assert.equal(jobNameOf({ pipelineJob: 'P', pipeline: 'p' }), 'P');
  assert.equal(jobNameOf({ pipeline: 'p' }), 'p');
  assert.equal(jobNameOf({ rrJob: 3, type: '', pipelineJob: undefined, pipeline: 'p' }), 'p');
});

test('attemptOf: max of header, prior deliveries + 1, and 1', () => {
  assert.equal(attemptOf({}), 1);
  assert.equal(attemptOf({ attemptHeader: 3 }), 3);
  assert.equal(attemptOf({ attemptHeader: '4' }), 4);
  assert.equal(attemptOf({ priorDeliveries: 2 }), 3);
  assert.equal(attemptOf({ attemptHeader: 5, priorDeliveries: 2 }), 5);
  assert.equal(attemptOf({ attemptHeader: 1, priorDeliveries: 4 }), 5);
  assert.equal(attemptOf({ attemptHeader: 'x', priorDeliveries: -1 }), 1);
  assert.equal(attemptOf({ attemptHeader: 0 }), 1);
});

test('hardening case 1: a header nested thousands deep is an error, never a stack overflow', () => {
  let deep: unknown = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.throws(() => headerValueToStrings(deep), BadHeaderError);
  assert.throws(() => headerValueToStrings({ a: { b: deep } }), BadHeaderError);
  const r = decodeRrHeaders(`{"a":${'['.repeat(2000)}${']'.repeat(2000)}}`);
  assert.equal(r.ok, false);
  const h = headersToStrings({ fine: 'x', deep, n: 1 }, []);
  assert.deepEqual(h.headers, { fine: ['x'], n: ['1'] });
  assert.match(String(h.bad), /"deep".*deeper than 32/);
  assert.deepEqual(headerValueToStrings([['a', ['b']], 'c', { '!': 'int32', value: 5 }]), ['a', 'b', 'c', '5']);
  assert.equal(attemptOf({ attemptHeader: deep }), 1);
});

test('hardening case 2: publishable() bounds what a broker cannot carry and says so', () => {
  const base = { id: 'i', job: 'J', pipeline: 'p', body: Buffer.alloc(0), contentType: 'text/plain', headers: { a: ['1'] }, delayMs: 0 };
  assert.equal(publishable(base), base, 'nothing to do: the same object');
  const j = publishable({ ...base, priority: 1.5, attempt: 2 ** 31 + 5, headers: { a: ['1'], junk: ['\u0001'.repeat(30_000)] } });
  assert.equal(j.priority, 1);
  assert.equal(j.attempt, 2 ** 31 - 1);
  assert.deepEqual(j.headers, { a: ['1'] });
  assert.match(String(j.extra?.[NORMALISED_HEADER]), /priority 1.5 made 1; attempt 2147483653 made 2147483647; headers dropped .*junk/);
  assert.equal(publishable({ ...base, priority: Infinity }).priority, undefined);
  assert.equal(publishable({ ...base, priority: 1e30 }).priority, Number.MAX_SAFE_INTEGER);
});
