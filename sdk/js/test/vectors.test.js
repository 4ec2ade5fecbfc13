// The JavaScript ports against the vectors the Python code made (sdk/vectors/generate.py):
// same transform, merge and apply for every case, same clock estimate after every sample, the
// same msgpack bytes as the hub's codec.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ClockEstimator, msgpack, ot } from '../src/index.js';

const load = (name) => JSON.parse(readFileSync(new URL(`../../vectors/${name}`, import.meta.url)));

test('playlist OT: every vector (each rule of playlist_ot.py and random cases)', () => {
  const { cases } = load('playlist_ot.json');
  assert.ok(cases.length > 100);
  for (const [n, c] of cases.entries()) {
    const where = `case ${n} (${c.rule})`;
    assert.deepEqual(ot.transform(c.a, c.b, c.base), c.transform_a_b, `${where}: transform(a, b)`);
    assert.deepEqual(ot.transform(c.b, c.a, c.base), c.transform_b_a, `${where}: transform(b, a)`);
    assert.deepEqual(ot.merge(c.base, c.a, c.b), c.merge, `${where}: merge`);
    assert.deepEqual(ot.apply(c.base, c.a), c.apply_a, `${where}: apply(a)`);
    assert.deepEqual(ot.apply(c.base, c.b), c.apply_b, `${where}: apply(b)`);
    assert.deepEqual(ot.apply(ot.apply(c.base, c.a), ot.transform(c.b, c.a, c.base)), c.apply_a_then_b, `${where}: a then b'`);
    assert.deepEqual(ot.apply(ot.apply(c.base, c.b), ot.transform(c.a, c.b, c.base)), c.apply_b_then_a, `${where}: b then a'`);
  }
});

test('clock estimator: the same estimate as client/clock.py after every sample', () => {
  const { runs, window, keep } = load('clock.json');
  const close = (actual, expected, what) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} != ${expected}`);
  for (const run of runs) {
    const clock = new ClockEstimator({ window, keep });
    assert.equal(clock.offsetMs, 0);
    assert.equal(clock.errorBoundMs, Infinity);
    for (const s of run.samples) {
      const [delay, offset] = clock.add(s.t0, s.t1, s.t2, s.t3);
      close(delay, s.delay, 'delay');
      close(offset, s.offset, 'offset');
      close(clock.offsetMs, s.offset_ms, 'offsetMs');
      close(clock.errorBoundMs, s.error_bound_ms, 'errorBoundMs');
      close(clock.toServer(1e6), s.to_server_1e6, 'toServer');
      close(clock.toLocal(1e6), s.to_local_1e6, 'toLocal');
    }
  }
});

// {"$bigint": "..."} and {"$bin": "<hex>"} as the values the codec gives
function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    if ('$bigint' in value) return BigInt(value.$bigint);
    if ('$bin' in value) return new Uint8Array(Buffer.from(value.$bin, 'hex'));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

test('msgpack: reads every case as the hub\'s codec wrote it, and writes the same bytes', () => {
  const { cases, invalid } = load('msgpack.json');
  assert.ok(cases.length > 40);
  for (const c of cases) {
    const bytes = new Uint8Array(Buffer.from(c.hex, 'hex'));
    const expected = revive(c.value);
    assert.deepEqual(msgpack.decode(bytes), expected, `decode ${c.name}`);
    assert.deepEqual(msgpack.decode(bytes.buffer), expected, `decode ${c.name} from an ArrayBuffer`);
    if (c.encode) assert.equal(Buffer.from(msgpack.encode(expected)).toString('hex'), c.hex, `encode ${c.name}`);
  }
  assert.ok(invalid.length >= 7);
  for (const c of invalid) {
    assert.throws(() => msgpack.decode(new Uint8Array(Buffer.from(c.hex, 'hex'))), Error, c.name);
  }
});
