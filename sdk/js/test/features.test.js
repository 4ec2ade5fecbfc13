// Parties, playlists and the inbox through the SDK against the real hub.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { Inbox, PartyClient, PartyScheduler, PlaylistEditor, now } from '../src/index.js';
import { closeAll, connect, env, next, noHub, token, unique, until } from './helpers.js';

afterEach(closeAll);

describe('features', { skip: noHub, timeout: 120000 }, () => {
  test('party: join, clock sync, a play both devices place at the same track position', async () => {
    const host = await connect('hana');
    const guest = await connect('gus');
    const id = unique('party');
    await host.request('party.create', { party_id: id, name: id, mode: 'everyone' });
    const hosting = new PartyClient(host, id);
    const guesting = new PartyClient(guest, id);
    await hosting.join();
    const joined = await guesting.join();
    assert.ok('state' in joined && 'queue' in joined);
    assert.ok(guest.clock.samples.length >= 8, 'join synced the clock');
    assert.ok(guest.clock.errorBoundMs < 1000, `error bound ${guest.clock.errorBoundMs}`);
    const queued = next(guesting, 'queue', (items) => items.length === 1);
    await guesting.queue('add', { track: 'song-1', item_id: 'q1' });
    assert.equal((await queued)[0].track, 'song-1');
    assert.equal(guesting.queue.items[0].item_id, 'q1');
    const playing = next(guesting, 'state', (state) => state.playing);
    await hosting.control('play');
    const state = await playing;
    assert.equal(state.track, 'song-1');
    await until(hosting, 'state', () => hosting.state.playing);
    // both devices, at one instant, place the track within their clocks' error of each other
    const t = now() + 1000;
    // each estimate is a median of its 4 lowest-delay samples: off by at most their worst delay / 2
    const worst = (clock) => Math.max(...[...clock.samples].sort((x, y) => x[0] - y[0]).slice(0, 4).map(([delay]) => delay)) / 2;
    const bound = worst(host.clock) + worst(guest.clock);
    assert.ok(Math.abs(hosting.positionAt(t) - guesting.positionAt(t)) <= bound + 1, 'positions agree');
    assert.ok(guesting.positionAt(t) >= 0);
    const plan = new PartyScheduler(guesting).plan(now());
    assert.ok(plan.startAtLocalMs !== null && plan.offsetMs >= 0);
    // the party's own verdict on this device: 150 ms ahead is nudged, 2 s ahead is a seek,
    // another track is a reload
    const ahead = await guesting.report(guesting.positionAt(now()) + 150);
    assert.equal(ahead.correction.mode, 'rate');
    assert.ok(ahead.correction.rate < 1, `rate ${ahead.correction.rate}`);
    const far = await guesting.report(guesting.positionAt(now()) + 2000);
    assert.equal(far.correction.mode, 'seek');
    const wrong = await guesting.report(1000, { track: 'another song' });
    assert.equal(wrong.drift_ms, null);
    assert.equal(wrong.correction.mode, 'reload');
    assert.equal(wrong.correction.state.track, 'song-1');
    assert.equal((await guesting.quality(10000)).bitrate_kbps, 320);
    assert.deepEqual(await guesting.quality(100), { bitrate_kbps: 24, changed: true });
    const paused = next(guesting, 'state', (s) => !s.playing);
    await hosting.control('pause');
    const still = (await paused).position_ms;
    assert.equal(guesting.positionAt(now() + 5000), still, 'paused: the position stays');
  });

  test('playlist: two editors edit at once and converge on the server\'s list', async () => {
    const ann = await connect('ann');
    const ben = await connect('ben');
    const { playlist_id: id } = await ann.request('playlist.create', { name: unique('pl') });
    await ann.request('playlist.share', { playlist: id, user: 'ben', role: 'editor' });
    const a = new PlaylistEditor(ann, id, { clientId: 'ann' });
    const b = new PlaylistEditor(ben, id, { clientId: 'ben' });
    await a.open();
    await b.open();
    const first = a.insert(0, 'one');
    a.insert(1, 'two');
    await a.settled();
    await until(b, 'change', () => b.version === a.version);
    // concurrent: neither waits for the other
    a.move(first, 1);
    a.insert(0, 'ann-top');
    b.remove(first);
    b.insert(1, 'ben-mid');
    b.insert(0, 'ben-top');
    await Promise.all([a.settled(), b.settled()]);
    const server = await ann.request('playlist.open', { playlist: id });
    await until(a, 'change', () => a.version === server.version);
    await until(b, 'change', () => b.version === server.version);
    const expected = server.items.map((item) => item.track);
    assert.deepEqual(a.items.map((item) => item.track), expected);
    assert.deepEqual(b.items.map((item) => item.track), expected);
    assert.ok(!expected.includes('one'), 'the remove won over the move');
    assert.equal(expected.length, 4);
  });

  test('inbox: a notification sent over HTTP arrives, and an ack changes unread', async () => {
    const user = unique('ivy');
    const hub = await connect(user);
    const inbox = new Inbox(hub);
    const loaded = await inbox.load();
    assert.deepEqual(loaded, { items: [], unread: 0 });
    const arrived = next(inbox, 'notification');
    const sent = await fetch(`${env.http}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token('svc', { scope: 'notify:send' })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: user, title: 'Hello', content: 'from the SDK test', priority: 1, category: 'test' }),
    });
    assert.equal(sent.status, 202, await sent.clone().text());
    const { id } = await sent.json();
    const note = await arrived;
    assert.equal(note.id, id);
    assert.equal(note.title, 'Hello');
    assert.equal(inbox.unread, 1);
    assert.equal(inbox.items[0].id, id);
    const changed = next(inbox, 'change', ({ unread }) => unread === 0);
    await inbox.ack(id, 'read');
    await changed;
    assert.equal(inbox.items[0].state, 'read');
    const again = await new Inbox(hub).load();
    assert.equal(again.unread, 0);
  });

  test('inbox: pages back with loadMore, and an archived notification leaves both devices\' lists', async () => {
    const user = unique('ida');
    const laptop = await connect(user);
    const phone = await connect(user);
    const live = new Inbox(phone);
    await live.load();
    for (let i = 0; i < 5; i++) {
      const sent = await fetch(`${env.http}/v1/notifications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token('svc', { scope: 'notify:send' })}`, 'content-type': 'application/json' },
        body: JSON.stringify({ user_id: user, title: `n${i}`, priority: 1 }),
      });
      assert.equal(sent.status, 202, await sent.clone().text());
    }
    await until(live, 'change', () => live.items.length === 5);
    const inbox = new Inbox(laptop);
    const titles = (items) => items.map((item) => item.title);
    assert.deepEqual(titles((await inbox.load({ limit: 2 })).items), ['n4', 'n3']);
    assert.equal(inbox.more, true);
    assert.equal(inbox.unread, 5);
    assert.deepEqual(titles(await inbox.loadMore()), ['n2', 'n1']);
    assert.equal(inbox.more, true);
    assert.deepEqual(titles(await inbox.loadMore()), ['n0']);
    assert.equal(inbox.more, false);
    assert.deepEqual(titles(inbox.items), ['n4', 'n3', 'n2', 'n1', 'n0']);
    await inbox.ack(inbox.items[2].id, 'archived');
    assert.deepEqual(titles(inbox.items), ['n4', 'n3', 'n1', 'n0']);
    await until(live, 'change', () => live.items.length === 4);
    assert.deepEqual(titles(live.items), ['n4', 'n3', 'n1', 'n0']);
    assert.deepEqual(titles((await new Inbox(laptop).load({ state: 'archived' })).items), ['n2']);
  });

  test('unsubscribe: the topic sends nothing more, and its position is forgotten', async () => {
    const ann = await connect('ann');
    const ben = await connect('ben');
    const room = unique('room');
    const topic = `room:${room}`;
    await ben.request('room.create', { room_id: room, name: room });
    await ann.request('room.join', { room });
    const heard = []; // every chat.message the socket brings, followed or not
    ann.on('chat.message', (content, frame) => frame.topic === topic && heard.push(content.text));
    const subscription = await ann.subscribe(topic);
    const say = (text) => ben.request('chat.send', { room, text, client_msg_id: text });
    await say('one');
    await until(ann, 'chat.message', () => heard.includes('one'));
    await subscription.unsubscribe();
    assert.equal(ann.position(topic), null);
    await say('two');
    await say('three');
    // one topic's events reach a socket in order: had "two" and "three" still been sent, they
    // would come before "four"
    await ann.subscribe(topic);
    await say('four');
    await until(ann, 'chat.message', () => heard.includes('four'));
    assert.deepEqual(heard, ['one', 'four']);
  });
});
