/** A collaborative playlist as a client holds it. PlaylistDoc is a port of client/playlist.py
 * (ShareDB's client algorithm, sans I/O: the confirmed list, one op in flight, pending local
 * ops, everything applied in version order); PlaylistEditor drives it over a Hub. */
import { Emitter } from './emitter.js';
import * as ot from './ot.js';

const NO_OP = { remove: { item_id: '\u0000none' } }; // names no item a client can create

export class PlaylistDoc {
  constructor(playlist, clientId) {
    this.playlist = playlist;
    this.clientId = clientId;
    this.version = 0;
    this.confirmed = []; // [[item_id, track]] the server confirmed at `version`
    this.items = []; // what the user sees: confirmed + in flight + pending
    this.inflight = null; // [client_seq, op made on `version`]
    this.pending = [];
    this.nextSeq = 1;
    this.early = new Map(); // version -> broadcast content, waiting for the versions before it
  }

  /** playlist.open's ack: the list at a version (nothing local may be queued). */
  opened(ack) {
    if (this.inflight !== null || this.pending.length) throw new Error('open again only with nothing in flight; use historyOp');
    this.version = ack.version;
    this.confirmed = ack.items.map((item) => [item.item_id, item.track]);
    this.items = [...this.confirmed];
    for (const version of [...this.early.keys()]) if (version <= this.version) this.early.delete(version);
    this.#drain();
  }

  /** A playlist.op from the stream (anyone's, ours included), in any order. */
  broadcast(content) {
    if (content.version > this.version) {
      this.early.set(content.version, content);
      this.#drain();
    }
  }

  /** An op from playlist.history (after a gap): it carries client_id and client_seq too. */
  historyOp(entry) {
    this.broadcast(entry);
  }

  /** The ack of our in-flight op: it is version `ack.version`. */
  acked(ack) {
    if (this.inflight === null || ack.version <= this.version) return; // known from the stream
    this.early.set(ack.version, { version: ack.version, op: ack.op, client_id: this.clientId, client_seq: this.inflight[0] });
    this.#drain();
  }

  #drain() {
    let content;
    while ((content = this.early.get(this.version + 1)) !== undefined) {
      this.early.delete(this.version + 1);
      this.#receive(content);
    }
  }

  #receive(content) {
    const op = content.op ?? null;
    const mine = this.inflight !== null && content.client_id === this.clientId && content.client_seq === this.inflight[0];
    if (mine) {
      this.confirmed = ot.apply(this.confirmed, op);
      if (!sameOp(op, this.inflight[1])) {
        // refused or transformed (a duplicate track, say): show the truth
        this.items = this.confirmed;
        for (const local of this.pending) this.items = ot.apply(this.items, local);
      }
      this.inflight = null;
    } else {
      this.#remote(op);
    }
    this.version = content.version;
  }

  #remote(op) {
    let state = this.confirmed;
    this.confirmed = ot.apply(this.confirmed, op);
    if (this.inflight !== null) {
      const [seq, mine] = this.inflight;
      this.inflight = [seq, ot.transform(mine, op, state)];
      [op, state] = [ot.transform(op, mine, state), ot.apply(state, mine)];
    }
    const rebased = [];
    for (const local of this.pending) {
      rebased.push(ot.transform(local, op, state));
      [op, state] = [ot.transform(op, local, state), ot.apply(state, local)];
    }
    this.pending = rebased;
    this.items = ot.apply(this.items, op);
  }

  /** The user edited: show it now, send it when nothing is in flight. */
  local(op) {
    this.items = ot.apply(this.items, op);
    this.pending.push(op);
  }

  /** The playlist.op content to send now, if any (one op in flight at a time). */
  nextFrame() {
    if (this.inflight !== null) return null;
    while (this.pending.length && this.pending[0] == null) this.pending.shift();
    if (!this.pending.length) return null;
    this.inflight = [this.nextSeq++, this.pending.shift()];
    return this.#frame();
  }

  /** After a reconnect: the in-flight op again (the server answers a repeat with its first
   * result), made on our current version. */
  resend() {
    return this.inflight !== null ? this.#frame() : null;
  }

  #frame() {
    const [seq, op] = this.inflight;
    return { playlist: this.playlist, base_version: this.version, client_id: this.clientId, client_seq: seq, op: op ?? NO_OP };
  }

  get idle() {
    return this.inflight === null && this.pending.length === 0;
  }

  /** Ops arrived past a version not seen yet: read playlist.history from `version` if the
   * stream does not bring it soon. */
  get gap() {
    return this.early.size > 0;
  }
}

function sameOp(a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value ?? null;
}

const GAP_WAIT_MS = 1000; // how long a missing version may take on the stream before asking history

/** A PlaylistDoc over a Hub: local edits show at once and go out one at a time; others' ops
 * arrive on `playlist:<id>`; a reconnect resends the op in flight; a gap or a lost stream is
 * read back from playlist.history. Emits 'change' (items) and 'error'. */
export class PlaylistEditor extends Emitter {
  #offs = [];
  #nextItem = 1;
  #gapTimer = null;

  constructor(hub, playlistId, { clientId } = {}) {
    super();
    this.hub = hub;
    this.playlistId = playlistId;
    this.topic = `playlist:${playlistId}`;
    this.doc = new PlaylistDoc(playlistId, clientId ?? `c-${Math.random().toString(36).slice(2, 10)}`);
  }

  get items() {
    return this.doc.items.map(([item_id, track]) => ({ item_id, track }));
  }

  get version() {
    return this.doc.version;
  }

  get clientId() {
    return this.doc.clientId;
  }

  /** Follows the playlist and loads it; resolves with playlist.open's ack. */
  async open() {
    this.close();
    this.#offs.push(
      this.hub.on('playlist.op', (content, frame) => frame.topic === this.topic && this.#changed(() => this.doc.broadcast(content))),
      this.hub.on('reload', (info) => info.topic === this.topic && this.#catchUp()),
      this.hub.on('welcome', () => this.#resend()),
    );
    const ack = await this.hub.request('playlist.open', { playlist: this.playlistId });
    this.#changed(() => this.doc.opened(ack));
    return ack;
  }

  /** Stops following the editor's events (the socket keeps the topic until unsubscribed). */
  close() {
    for (const off of this.#offs.splice(0)) off();
    clearTimeout(this.#gapTimer);
  }

  /** Inserts `track` at `index`; returns the new item's id. */
  insert(index, track) {
    const itemId = `${this.doc.clientId}-${this.#nextItem++}`;
    this.#local({ insert: { index, track, item_id: itemId } });
    return itemId;
  }

  remove(itemId) {
    this.#local({ remove: { item_id: itemId } });
  }

  move(itemId, toIndex) {
    this.#local({ move: { item_id: itemId, to_index: toIndex } });
  }

  /** Resolves when every local edit has been acknowledged; rejects on the editor's next
   * 'error' (a refused op) meanwhile. */
  async settled() {
    while (!this.doc.idle) {
      await new Promise((resolve, reject) => {
        const offs = [this.on('change', () => done(resolve)), this.on('error', (err) => done(reject, err))];
        const done = (fn, value) => (offs.forEach((off) => off()), fn(value));
      });
    }
  }

  #local(op) {
    this.#changed(() => this.doc.local(op));
    this.#flush();
  }

  #flush() {
    const frame = this.doc.nextFrame();
    if (frame) this.#submit(frame);
  }

  #submit(frame) {
    this.hub.request('playlist.op', frame).then(
      (ack) => this.#changed(() => this.doc.acked(ack)),
      (err) => {
        // 'disconnected': the welcome resends it (same client_seq: the first result comes back)
        if (err.code !== 'disconnected' && err.code !== 'closed') this.emit('error', err);
      },
    );
  }

  #resend() {
    const frame = this.doc.resend();
    if (frame) this.#submit(frame);
  }

  #changed(fn) {
    fn();
    if (this.doc.gap) this.#watchGap();
    this.emit('change', this.items);
    // our op is confirmed by its ack or by its broadcast, whichever comes first: send the next
    if (this.doc.inflight === null && this.doc.pending.length) this.#flush();
  }

  #watchGap() {
    if (this.#gapTimer) return;
    this.#gapTimer = setTimeout(() => {
      this.#gapTimer = null;
      if (this.doc.gap) this.#catchUp();
    }, GAP_WAIT_MS);
  }

  /** Reads the ops after our version from playlist.history (a gap, or a lost stream). */
  async #catchUp() {
    try {
      const { ops } = await this.hub.request('playlist.history', { playlist: this.playlistId, from_version: this.doc.version });
      this.#changed(() => ops.forEach((entry) => this.doc.historyOp(entry)));
    } catch (err) {
      this.emit('error', err);
    }
  }
}
