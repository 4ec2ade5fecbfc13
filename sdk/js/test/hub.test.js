// The Hub against the real hub: tokens, requests, pipelining, errors, resume and reload.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import WebSocket from 'ws';
import { Hub, HubError } from '../src/index.js';
import { closeAll, connect, cut, env, next, noHub, redis, token, unique, until, WAIT_MS } from './helpers.js';

afterEach(closeAll); // a user may hold 5 sockets (MAX_WS_CONNECTIONS_PER_USER): none left open

// A hub left idle for the whole file: the hub pings it every heartbeat (3 s here) and closes
// it (4408) after 2 silent intervals, unless the SDK answers each ping with a pong.
const PINGS = 3; // the third ping comes over 2 intervals after the first
const watcher = noHub ? null : new Hub({ url: env.url, token: token('idle-watcher'), WebSocket });
after(() => watcher?.close());
const idle = noHub ? null : watcher.connect().then(() => {
  const hub = watcher;
  const seen = { pings: 0, disconnects: [], hub };
  seen.done = new Promise((resolve) => {
    hub.socket.addEventListener('message', (event) => {
      if (JSON.parse(event.data).type === 'ping' && ++seen.pings >= PINGS) resolve();
    });
    hub.on('disconnect', (info) => resolve(seen.disconnects.push(info.code)));
  });
  return seen;
});
// handled here too: with RTHUB_SDK_TEST_ONLY naming another test, `after` closes the watcher
// before its welcome and nothing else awaits `idle`
idle?.catch(() => {});

/** A token provider the test can hold, as a network that stays down until released. */
function gatedProvider(user) {
  let release = () => {};
  let gate = Promise.resolve();
  const provider = async () => {
    await gate;
    provider.calls++;
    return token(user);
  };
  provider.calls = 0;
  provider.hold = () => (gate = new Promise((resolve) => (release = resolve)));
  provider.release = () => release();
  return provider;
}

/** A room made by `owner` and joined by the others' hubs; its id. */
async function room(owner, ...others) {
  const id = unique('room');
  await owner.request('room.create', { room_id: id, name: id });
  for (const hub of others) await hub.request('room.join', { room: id });
  return id;
}

/** Alice's room and a reader whose network the test can hold down (its token provider). */
async function readerOf(user) {
  const alice = await connect('alice');
  const provider = gatedProvider(user);
  const reader = await connect(user, { token: provider });
  return { alice, reader, provider, id: await room(alice, reader) };
}

const send = (hub, roomId, text) => hub.request('chat.send', { room: roomId, text, client_msg_id: unique('m') });

describe('connecting', { skip: noHub, timeout: 120000 }, () => {
  test('a token string connects; the welcome names the user and the bounds', async () => {
    const states = [];
    const hub = new Hub({ url: env.url, token: token('alice'), WebSocket });
    hub.on('state', (state) => states.push(state));
    const welcome = await hub.connect();
    assert.equal(welcome.user_id, 'alice');
    assert.equal(hub.session.tenant, env.tenant);
    assert.ok(welcome.max_in_flight > 0 && welcome.heartbeat_s > 0 && welcome.resume_token);
    assert.equal(hub.state, 'open');
    await hub.close();
    assert.deepEqual(states, ['connecting', 'open', 'closed']);
  });

  test('a refused first connect rejects (bad token: HTTP 401, no retry)', async () => {
    const hub = new Hub({ url: env.url, token: 'not.a.jwt', WebSocket });
    await assert.rejects(hub.connect(), (err) => err instanceof HubError && err.code === 'unauthorized');
    assert.equal(hub.state, 'closed');
  });

  test('a provider is asked again before exp, and on reconnect', async () => {
    const calls = [];
    let refreshed;
    const second = new Promise((resolve) => (refreshed = resolve));
    const provider = async () => {
      const jwt = token('carol', { ttlS: 5 });
      calls.push({ at: Date.now(), exp: JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).exp });
      if (calls.length === 2) refreshed();
      return jwt;
    };
    const hub = await connect('carol', { token: provider, tokenRefreshMarginS: 3 });
    assert.equal(calls.length, 1);
    await second; // ~2.5 s after connecting: halfway, the 5 s token living under twice the 3 s margin
    assert.ok(calls[1].at < calls[0].exp * 1000, 'the new token came before the old one expired');
    cut(hub);
    await next(hub, 'welcome');
    assert.ok(calls.length >= 3, 'the reconnect asked the provider');
    assert.equal((await hub.request('ping', {})).server_time_ms > 0, true);
  });
});

/** The exp (epoch seconds) a JWT says, unverified. */
const expOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).exp;

/** A connected Hub of this test alone, closed when it ends (the file's afterEach closes
 * every hub of `connect` after each test: the side-by-side tests below must not share it). */
async function own(t, user, options) {
  const hub = new Hub({ url: env.url, WebSocket, requestTimeoutMs: WAIT_MS, ...options });
  t.after(() => hub.close());
  await hub.connect();
  return hub;
}

// The hub closes a socket (4401 "token expired") once its token's exp is past (plus the
// upgrade's 5 s leeway, checked each second): these wait that long, so they run side by side.
describe('token refresh on the open socket', { skip: noHub, timeout: 120000, concurrency: true }, () => {
  test('a provider of 4 s tokens keeps one socket open past them: session.refresh, no reconnect', async (t) => {
    const user = unique('rita');
    const exps = [];
    const provider = async () => {
      const jwt = token(user, { ttlS: 4 });
      exps.push(expOf(jwt));
      return jwt;
    };
    const hub = await own(t, user, { token: provider });
    const { session_id } = hub.session;
    const disconnects = [];
    hub.on('disconnect', (info) => disconnects.push(info));
    const refreshed = [];
    hub.on('refreshed', (info) => refreshed.push(info));
    // well past the first token's exp, its leeway and the hub's next check
    await until(hub, 'refreshed', () => Date.now() > (exps[0] + 7) * 1000);
    assert.ok((await hub.request('ping', {})).server_time_ms > (exps[0] + 7) * 1000);
    assert.deepEqual(disconnects, [], 'never closed nor reconnected');
    assert.equal(hub.session.session_id, session_id);
    assert.equal(hub.state, 'open');
    assert.ok(refreshed.length >= 3, `${refreshed.length} refreshes acked`);
    assert.ok(refreshed.every((info, i) => info.exp >= (i ? refreshed[i - 1].exp : exps[0])), 'each ack names a later exp');
  });

  test('a static token string is closed 4401 "token expired" at its exp, for good', async (t) => {
    const user = unique('stan');
    const hub = await own(t, user, { token: token(user, { ttlS: 3 }) });
    const disconnected = next(hub, 'disconnect');
    const failed = next(hub, 'error');
    assert.deepEqual(await disconnected, { code: 4401, reason: 'token expired' });
    const err = await failed;
    assert.equal(err.code, 'token_expired');
    assert.equal(hub.state, 'closed');
    await assert.rejects(hub.request('ping', {}), { code: 'closed' });
  });

  test('refreshes refused until the 4401: a provider reconnects and resumes with a fresh token', async (t) => {
    const user = unique('rex');
    let wrong = false; // the provider gives another user's token: the hub answers forbidden
    const provider = async () => token(wrong ? unique('other') : user, { ttlS: 4 });
    const warnings = [];
    const hub = await own(t, user, { token: provider, logger: { warn: (message) => warnings.push(message) } });
    wrong = true;
    const dropped = next(hub, 'disconnect');
    const resumed = next(hub, 'resumed');
    hub.on('disconnect', () => (wrong = false)); // the reconnect's token is the user's own
    assert.deepEqual(await dropped, { code: 4401, reason: 'token expired' });
    await resumed;
    assert.equal(hub.state, 'open');
    assert.ok(warnings.some((message) => message.startsWith('rthub: token refresh failed')), warnings.join('; '));
    assert.ok((await hub.request('ping', {})).server_time_ms > 0);
  });
});

describe('requests', { skip: noHub, timeout: 120000 }, () => {
  test('chat round trip between two hubs: ack, then a typed event with its seq', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const id = await room(alice, bob);
    const got = [];
    const sub = await bob.subscribe(`room:${id}`, { onEvent: (content, frame) => frame.type === 'chat.message' && got.push(frame) });
    const heard = next(bob, 'chat.message', (content) => content.room === id);
    const ack = await alice.request('chat.send', { room: id, text: 'hello bob', client_msg_id: 'c1' });
    assert.ok(ack.message_id && ack.seq > 0);
    const message = await heard;
    assert.equal(message.text, 'hello bob');
    assert.equal(message.sender, 'alice');
    assert.equal(message.message_id, ack.message_id);
    await until(bob, 'chat.message', () => got.length > 0);
    assert.equal(got[0].topic, `room:${id}`);
    assert.equal(got[0].seq, ack.seq);
    assert.equal(sub.seq, ack.seq);
    // the same client_msg_id again: the same message (what a resend after 'disconnected' relies on)
    const again = await alice.request('chat.send', { room: id, text: 'hello bob', client_msg_id: 'c1' });
    assert.equal(again.message_id, ack.message_id);
  });

  test('msgpack: binary frames both ways, a JSON member hears a msgpack sender, and a cut socket resumes', async () => {
    const alice = await connect('alice'); // JSON
    const provider = gatedProvider('bob');
    const bob = await connect('bob', { encoding: 'msgpack', token: provider });
    assert.equal(bob.socket.protocol, 'rthub.msgpack.v1');
    const frames = [];
    const watchFrames = () => bob.socket.addEventListener('message', (event) => frames.push(event.data instanceof ArrayBuffer));
    watchFrames();
    const id = await room(alice, bob);
    const seqs = [];
    await bob.subscribe(`room:${id}`, { onEvent: (content, frame) => frame.type === 'chat.message' && seqs.push(frame.seq) });
    const toAlice = next(alice, 'chat.message', (content) => content.room === id);
    const sent = await bob.request('chat.send', { room: id, text: 'é🎵 from msgpack', client_msg_id: 'mp1' });
    assert.equal((await toAlice).text, 'é🎵 from msgpack');
    assert.equal((await toAlice).message_id, sent.message_id);
    await send(alice, id, 'from json');
    await until(bob, 'chat.message', () => seqs.length === 2);
    provider.hold();
    cut(bob);
    const missed = [(await send(alice, id, 'x')).seq, (await send(alice, id, 'y')).seq];
    const resumed = next(bob, 'resumed');
    provider.release();
    await resumed;
    watchFrames();
    await until(bob, 'chat.message', () => seqs.length === 4);
    assert.deepEqual(seqs.slice(2), missed);
    assert.equal(bob.socket.protocol, 'rthub.msgpack.v1');
    assert.ok(frames.length > 4 && frames.every(Boolean), 'every frame the hub sent was binary');
  });

  test('pipelining: more than max_in_flight at once, replies matched, order kept per room', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const id = await room(alice, bob);
    const n = alice.session.max_in_flight + 36;
    const seen = [];
    bob.on('chat.message', (content) => content.room === id && seen.push(content.text));
    const acks = await Promise.all(Array.from({ length: n }, (_, i) => send(alice, id, `m${i}`)));
    for (let i = 1; i < n; i++) assert.ok(acks[i].seq > acks[i - 1].seq, `ack ${i} in send order`);
    await until(bob, 'chat.message', () => seen.length === n);
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => `m${i}`));
  });

  test('errors reject with HubError codes; no reply in time is a timeout', async () => {
    const alice = await connect('alice');
    await assert.rejects(alice.request('chat.send', { room: unique('r') }), { name: 'HubError', code: 'bad_request' });
    await assert.rejects(alice.request('room.join', { room: unique('nowhere') }), { code: 'not_found' });
    await assert.rejects(alice.request('chat.history', { room: unique('r') }, { timeoutMs: 1 }), { code: 'timeout' });
    assert.equal((await alice.request('ping', {})).server_time_ms > 0, true, 'the late reply is ignored');
  });

  test('requests made while disconnected wait for the reconnect; in-flight ones reject', async () => {
    const provider = gatedProvider('dave');
    const dave = await connect('dave', { token: provider });
    const id = unique('room');
    await dave.request('room.create', { room_id: id, name: id });
    provider.hold();
    const inflight = send(dave, id, 'in flight at the cut');
    cut(dave);
    await assert.rejects(inflight, { code: 'disconnected' });
    assert.equal(dave.state, 'reconnecting');
    const queued = send(dave, id, 'sent after the reconnect');
    provider.release();
    const ack = await queued;
    assert.ok(ack.seq > 0);
  });
});

describe('resume', { skip: noHub, timeout: 120000 }, () => {
  test('a dropped socket resumes: missed events replayed once, none twice', async () => {
    const { alice, reader: bob, provider, id } = await readerOf('bob');
    const seqs = [];
    await bob.subscribe(`room:${id}`, { onEvent: (content, frame) => frame.type === 'chat.message' && seqs.push(frame.seq) });
    for (const text of ['a', 'b']) await send(alice, id, text);
    await until(bob, 'chat.message', () => seqs.length === 2);
    provider.hold();
    cut(bob);
    const missed = [];
    for (const text of ['c', 'd', 'e']) missed.push((await send(alice, id, text)).seq);
    const resumed = next(bob, 'resumed');
    provider.release();
    await resumed;
    await until(bob, 'chat.message', () => seqs.length >= 5);
    const live = (await send(alice, id, 'f')).seq;
    await until(bob, 'chat.message', () => seqs.includes(live));
    assert.deepEqual(seqs.slice(2, 5), missed);
    assert.equal(new Set(seqs).size, seqs.length, 'no duplicate delivered');
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  });

  test('a refused resume (spent token: 4403) opens a fresh session and subscribes with since', async () => {
    const { alice, reader: erin, provider, id } = await readerOf('erin');
    const seqs = [];
    erin.on('chat.message', (content, frame) => content.room === id && seqs.push(frame.seq));
    await send(alice, id, 'before');
    await until(erin, 'chat.message', () => seqs.length === 1);
    provider.hold();
    const spent = erin.session.resume_token;
    cut(erin);
    // someone else spends the resume token first: erin's own resume is refused
    const thief = new WebSocket(`${env.url}?token=${token('erin')}&resume=${spent}`);
    await new Promise((resolve, reject) => {
      thief.on('message', (data) => JSON.parse(data).type === 'session.welcome' && resolve());
      thief.on('error', reject);
    });
    thief.close();
    const missed = (await send(alice, id, 'while away')).seq;
    const disconnects = [];
    erin.on('disconnect', (info) => disconnects.push(info.code));
    const welcomed = next(erin, 'welcome', (w) => w.resumed === false);
    provider.release();
    await welcomed;
    await until(erin, 'chat.message', () => seqs.includes(missed));
    assert.ok(disconnects.includes(4403), `the resume was refused: ${disconnects}`);
    assert.deepEqual(seqs, [seqs[0], missed]);
  });

  test('history Redis lost: recovered false calls onReload', async () => {
    const { alice, reader: fred, provider, id } = await readerOf('fred');
    const reloads = [];
    await fred.subscribe(`room:${id}`, { onReload: (info) => reloads.push(info) });
    await send(alice, id, 'kept');
    const before = fred.position(`room:${id}`);
    provider.hold();
    cut(fred);
    // Redis restarted without persistence, for this topic: history and epoch gone
    const tag = `{${env.tenant}/room:${id}}`;
    await redis('DEL', `rthub:s:${tag}`, `rthub:e:${tag}`);
    const lost = (await send(alice, id, 'after the loss')).seq;
    const reloaded = next(fred, 'reload', (info) => info.topic === `room:${id}`);
    provider.release();
    const info = await reloaded;
    assert.equal(reloads.length, 1);
    assert.notEqual(info.epoch, before.epoch);
    assert.ok(info.seq >= lost, 'the offset to go on from is the current one');
    // the app reloads history; live events go on
    const heard = next(fred, 'chat.message', (content) => content.text === 'live');
    const live = (await send(alice, id, 'live')).seq;
    assert.equal((await heard).seq, live);
  });
});

describe('heartbeat', { skip: noHub, timeout: 120000 }, () => {
  test('pongs keep an idle socket open past 2 heartbeat intervals', async () => {
    const seen = await idle;
    await seen.done;
    assert.deepEqual(seen.disconnects, [], 'never closed');
    assert.ok(seen.pings >= PINGS, `${seen.pings} pings`);
    assert.equal(seen.hub.state, 'open');
  });
});
