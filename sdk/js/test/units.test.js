// What needs no hub: backoff, token expiry, PlaylistDoc fed protocol frames, the party
// scheduler's arithmetic, and the heartbeat watchdog against a local socket server that
// stops talking; msgpack past what the shared vectors hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { backoffDelay, ClockEstimator, Hub, msgpack, PartyScheduler, PlaylistDoc } from '../src/index.js';
import { refreshDelayMs, retryDelayMs, tokenExp } from '../src/token.js';

test('backoff: full jitter under an exponential ceiling capped at maxMs', () => {
  const options = { initialMs: 200, maxMs: 10000 };
  assert.equal(backoffDelay(0, options, () => 0.999999) < 200, true);
  assert.equal(backoffDelay(3, options, () => 1), 1600);
  assert.equal(backoffDelay(30, options, () => 1), 10000);
  assert.equal(backoffDelay(5, options, () => 0), 0);
  const spread = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(4, options))));
  assert.ok(spread.size > 25, 'delays are spread, not synchronised');
  for (const d of spread) assert.ok(d >= 0 && d <= 3200);
});

test('token exp is read from the JWT payload (base64url), null when unreadable', () => {
  const payload = Buffer.from(JSON.stringify({ sub: 'ü', exp: 1234567890 })).toString('base64url');
  assert.equal(tokenExp(`x.${payload}.y`), 1234567890);
  assert.equal(tokenExp('nonsense'), null);
});

test('refresh timing: the margin before exp; halfway for a token living under twice the margin', () => {
  const nowMs = 1_000_000_000_000;
  const at = (s) => nowMs / 1000 + s; // an exp s seconds from now
  assert.equal(refreshDelayMs(at(3600), nowMs, 60), 3540_000, 'an hour-long token: 60 s before exp');
  assert.equal(refreshDelayMs(at(120), nowMs, 60), 60_000, 'exactly twice the margin: both rules agree');
  assert.equal(refreshDelayMs(at(4), nowMs, 60), 2000, 'a 4 s token: after 2 s');
  assert.equal(refreshDelayMs(at(5), nowMs, 3), 2500, 'a 5 s token, 3 s margin: after 2.5 s, not 2 s');
  assert.equal(refreshDelayMs(at(0), nowMs, 60), null, 'expired: nothing to plan, the reconnect asks');
  assert.equal(refreshDelayMs(null, nowMs, 60), null, 'no exp: never');
});

test('refresh retry: backoff, at most half the time left, none when too close to exp', () => {
  const nowMs = 1_000_000_000_000;
  const at = (s) => nowMs / 1000 + s;
  assert.equal(retryDelayMs(800, at(60), nowMs), 800);
  assert.equal(retryDelayMs(800, at(1), nowMs), 500, 'lands before exp');
  assert.equal(retryDelayMs(0, at(60), nowMs), 100, 'a zero jitter still waits a little');
  assert.equal(retryDelayMs(800, at(0.15), nowMs), null, 'too late: the 4401 and reconnect take over');
});

test('PlaylistDoc: a concurrent remote op is transformed past ours; both converge', () => {
  const open = { version: 1, items: [{ item_id: 'a', track: 'A' }, { item_id: 'b', track: 'B' }] };
  const mine = new PlaylistDoc('p', 'me');
  const theirs = new PlaylistDoc('p', 'them');
  mine.opened(open);
  theirs.opened(open);
  mine.local({ move: { item_id: 'a', to_index: 1 } });
  const myFrame = mine.nextFrame();
  assert.deepEqual([myFrame.base_version, myFrame.client_seq], [1, 1]);
  theirs.local({ insert: { index: 0, track: 'X', item_id: 'x' } });
  const theirFrame = theirs.nextFrame();
  // the server orders theirs first (v2), then ours transformed (v3)
  const v2 = { version: 2, op: theirFrame.op, client_id: 'them', client_seq: 1 };
  const v3op = { move: { item_id: 'a', to_index: 2 } };
  mine.broadcast(v2);
  assert.equal(mine.version, 2);
  assert.deepEqual(mine.items.map(([id]) => id), ['x', 'b', 'a']);
  mine.acked({ version: 3, op: v3op }); // the ack before its broadcast
  mine.broadcast({ version: 3, op: v3op, client_id: 'me', client_seq: 1 }); // then the broadcast: known
  theirs.broadcast({ version: 3, op: v3op, client_id: 'me', client_seq: 1 }); // early: waits for v2
  assert.equal(theirs.gap, true);
  theirs.acked({ version: 2, op: theirFrame.op });
  assert.equal(theirs.gap, false);
  assert.deepEqual(theirs.items, mine.items);
  assert.ok(mine.idle && theirs.idle);
  assert.equal(mine.resend(), null);
});

test('scheduler: start at the converted time; nudge small drift, seek large drift', () => {
  const clock = new ClockEstimator();
  clock.add(1000, 6000, 6000, 1000); // server = local + 5000, exactly
  const party = {
    hub: { clock },
    state: { track: 't', position_ms: 10000, playing: true, at_server_ms: 20000 },
    positionAt(localMs) {
      return this.state.position_ms + (clock.toServer(localMs) - this.state.at_server_ms);
    },
  };
  const scheduler = new PartyScheduler(party, { nudgeBelowMs: 400 });
  assert.deepEqual(scheduler.plan(14000), { startAtLocalMs: 15000, offsetMs: 10000 });
  assert.deepEqual(scheduler.plan(16000), { startAtLocalMs: 16000, offsetMs: 11000 });
  assert.equal(scheduler.correct(11010, 16000).action, 'none');
  const nudge = scheduler.correct(11100, 16000);
  assert.equal(nudge.action, 'nudge');
  assert.equal(nudge.driftMs, 100);
  assert.ok(nudge.rate < 1 && nudge.rate >= 0.95, 'ahead: slow down a little');
  assert.ok(scheduler.correct(10900, 16000).rate > 1, 'behind: speed up');
  const seek = scheduler.correct(12000, 16000);
  assert.deepEqual([seek.action, seek.seekToMs], ['seek', 11000]);
  party.state = { ...party.state, playing: false };
  assert.deepEqual(scheduler.plan(16000), { startAtLocalMs: null, offsetMs: 10000 });
});

test('heartbeat: a server that goes silent is detected after 2 intervals and left', async () => {
  const server = new WebSocketServer({ port: 0 });
  await new Promise((resolve) => server.on('listening', resolve));
  const connections = [];
  server.on('connection', (socket, request) => {
    connections.push({ socket, url: request.url });
    // a welcome with a 0.2 s heartbeat, then silence: no ping, no close (a dead peer)
    socket.send(JSON.stringify({ type: 'session.welcome', content: { session_id: 's', user_id: 'u', heartbeat_s: 0.2, resume_token: `r${connections.length}` } }));
  });
  const hub = new Hub({ url: `ws://127.0.0.1:${server.address().port}/ws`, token: 'x.e30.y', WebSocket, reconnect: { initialMs: 10, maxMs: 20 } });
  const disconnects = [];
  hub.on('disconnect', (info) => disconnects.push(info));
  const started = performance.now();
  await hub.connect();
  const second = new Promise((resolve) => server.on('connection', resolve));
  await second;
  const waited = performance.now() - started;
  assert.equal(disconnects[0].code, 4408);
  assert.ok(waited >= 390, `detected after ${waited} ms, not before 2 heartbeats`);
  assert.match(connections[1].url, /resume=r1/, 'the reconnect resumes');
  await hub.close();
  await new Promise((resolve) => server.close(resolve));
});

test('pong: a ping is answered at once', async () => {
  const server = new WebSocketServer({ port: 0 });
  await new Promise((resolve) => server.on('listening', resolve));
  const ponged = new Promise((resolve) => server.on('connection', (socket) => {
    socket.send(JSON.stringify({ type: 'session.welcome', content: { heartbeat_s: 30, resume_token: 'r' } }));
    socket.send(JSON.stringify({ type: 'ping', content: { server_time_ms: 1 } }));
    socket.on('message', (data) => resolve(JSON.parse(data)));
  }));
  const hub = new Hub({ url: `ws://127.0.0.1:${server.address().port}/ws`, token: 'x.e30.y', WebSocket });
  await hub.connect();
  assert.equal((await ponged).type, 'pong');
  await hub.close();
  await new Promise((resolve) => server.close(resolve));
});

test('closes that reconnecting cannot help (4401, 4403, 4409, 4410) end the hub; 1012 reconnects', async () => {
  const server = new WebSocketServer({ port: 0 });
  await new Promise((resolve) => server.on('listening', resolve));
  const codes = [1012, 4410];
  const urls = [];
  server.on('connection', (socket, request) => {
    urls.push(request.url);
    socket.send(JSON.stringify({ type: 'session.welcome', content: { heartbeat_s: 30, resume_token: `r${urls.length}` } }));
    socket.close(codes.shift(), 'bye');
  });
  const hub = new Hub({ url: `ws://127.0.0.1:${server.address().port}/ws`, token: 'x.e30.y', WebSocket, reconnect: { initialMs: 10, maxMs: 20 } });
  const states = [];
  hub.on('state', (state) => states.push(state));
  const failed = new Promise((resolve) => hub.on('error', resolve));
  await hub.connect();
  const err = await failed;
  assert.equal(err.code, 'token_revoked');
  assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'open', 'closed']);
  assert.equal(urls.length, 2, 'one reconnect (after 1012), none after 4410');
  assert.match(urls[1], /resume=r1/);
  await assert.rejects(hub.request('ping', {}), { code: 'closed' });
  await new Promise((resolve) => server.close(resolve));
});

test('msgpack: long strings and arrays, bigints, and what JSON.stringify would drop', () => {
  const long = 'é'.repeat(40000); // 80,000 bytes: str32
  const many = Array.from({ length: 70000 }, (_, i) => i % 3); // array32
  const wide = Object.fromEntries(Array.from({ length: 70000 }, (_, i) => [`k${i}`, i])); // map32
  for (const value of [long, many, wide]) assert.deepEqual(msgpack.decode(msgpack.encode(value)), value);
  assert.equal(msgpack.encode(long)[0], 0xdb);
  assert.equal(msgpack.encode(many)[0], 0xdd);
  assert.equal(msgpack.encode(wide)[0], 0xdf);
  assert.equal(msgpack.decode(msgpack.encode(2n ** 64n - 1n)), 2n ** 64n - 1n);
  assert.equal(msgpack.decode(msgpack.encode(-(2n ** 63n))), -(2n ** 63n));
  assert.equal(msgpack.decode(msgpack.encode(5n)), 5, 'a small bigint reads back as a number');
  assert.throws(() => msgpack.encode(2n ** 64n), /does not fit in 64 bits/);
  // as JSON.stringify: undefined fields left out, undefined in arrays and NaN as nil, toJSON
  const when = new Date(0);
  assert.deepEqual(msgpack.decode(msgpack.encode({ a: undefined, b: [undefined, NaN, Infinity], when })),
    { b: [null, null, null], when: '1970-01-01T00:00:00.000Z' });
  assert.deepEqual(msgpack.decode(msgpack.encode(Buffer.from([1, 2]))), new Uint8Array([1, 2]));
  assert.throws(() => msgpack.encode([() => 1]), /cannot encode a function in an array/);
  assert.throws(() => msgpack.encode(Symbol('s')), /cannot encode a symbol/);
  const proto = msgpack.decode(msgpack.encode(JSON.parse('{"__proto__": {"polluted": true}}')));
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, '__proto__ is a field, as in JSON.parse');
  assert.deepEqual(Object.keys(proto), ['__proto__']);
  assert.equal({}.polluted, undefined);
});

test('a Hub refuses an encoding it does not speak', () => {
  assert.throws(() => new Hub({ url: 'ws://x', token: 't', WebSocket, encoding: 'cbor' }),
    /encoding must be 'json' or 'msgpack', not "cbor"/);
  assert.equal(new Hub({ url: 'ws://x', token: 't', WebSocket, encoding: 'msgpack' }).encoding, 'msgpack');
});
