/** One connection to the hub (PROTOCOL.md v1) that survives drops: it reconnects with
 * backoff, resumes the session (or subscribes again from its offsets), drops duplicate
 * events by `seq`, answers heartbeats, and matches pipelined replies to their requests. */
import { backoffDelay } from './backoff.js';
import { ClockEstimator } from './clock.js';
import { Emitter } from './emitter.js';
import { HubError } from './errors.js';
import { now } from './time.js';
import { refreshDelayMs, retryDelayMs, tokenExp } from './token.js';

/** Close codes after which reconnecting cannot help (PROTOCOL.md "Close codes"): the token
 * is bad or revoked, the socket is forbidden, or another connection replaced this one
 * (reconnecting would replace that one in turn, forever). One exception: 4401 "token
 * expired" with a token provider reconnects, since the provider can give a fresh token. */
const FINAL_CLOSE = new Map([
  [4401, 'unauthorized'],
  [4403, 'forbidden'],
  [4409, 'replaced'],
  [4410, 'token_revoked'],
]);
const EXPIRED = 'token expired'; // the reason of the hub's 4401 when a socket outlives its token
/** An upgrade refused over HTTP (`ws` reports the status): a token or user the hub will not take. */
const HTTP_REFUSAL = new Map([
  [401, 'unauthorized'],
  [403, 'forbidden'],
]);
const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

export class Hub extends Emitter {
  #ws = null;
  #welcomed = false; // the current socket has had its session.welcome
  #resumeToken = null;
  #resuming = false; // the current socket asked to resume
  #attempt = 0;
  #retryTimer = null;
  #refreshTimer = null;
  #refreshGen = 0; // bumped whenever the socket changes: an older refresh's outcome is ignored
  #refreshAttempt = 0;
  #socketExp = null; // exp of the token the current socket is authorised with
  #liveTimer = null;
  #first = null; // {resolve, reject} of connect() until the first welcome
  #nextId = 1;
  #pending = new Map(); // id -> request sent, awaiting its reply
  #queue = []; // requests not sent yet (disconnected, or over max_in_flight)
  #topics = new Map(); // topic -> {epoch, seq, listeners: Set<{onEvent, onReload}>}

  constructor({
    url,
    token,
    tokenRefreshMarginS = 60,
    WebSocket = globalThis.WebSocket,
    requestTimeoutMs = 10000,
    connectTimeoutMs = 15000,
    reconnect = {},
    logger = SILENT,
  } = {}) {
    super();
    if (!url) throw new TypeError('Hub needs a url');
    if (!token) throw new TypeError('Hub needs a token (a string or an async provider)');
    if (!WebSocket) throw new TypeError('no WebSocket: pass the `ws` package as { WebSocket }');
    this.url = url;
    this.token = token;
    this.tokenRefreshMarginS = tokenRefreshMarginS;
    this.WebSocket = WebSocket;
    this.requestTimeoutMs = requestTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.reconnect = { initialMs: 200, maxMs: 10000, ...reconnect };
    this.logger = { ...SILENT, ...logger };
    this.state = 'idle';
    this.session = null;
    this.clock = new ClockEstimator();
  }

  listenerError(err, name) {
    this.logger.error(`rthub: a '${name}' listener threw`, err);
  }

  // -- connection ------------------------------------------------------------------------------
  /** Opens the session; resolves with session.welcome's content. */
  connect() {
    if (this.state === 'open') return Promise.resolve(this.session);
    if (this.#first) return this.#first.promise;
    if (this.state === 'reconnecting') {
      return new Promise((resolve, reject) => {
        const offs = [this.on('welcome', (w) => done(resolve, w)), this.on('state', (s) => s === 'closed' && done(reject, new HubError('closed', 'closed while reconnecting')))];
        const done = (fn, value) => (offs.forEach((off) => off()), fn(value));
      });
    }
    let resolve, reject;
    const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    this.#first = { promise, resolve, reject };
    this.#setState('connecting');
    this.#open();
    return promise;
  }

  /** Closes for good: pending requests reject with 'closed'. */
  async close() {
    this.#setState('closed');
    clearTimeout(this.#retryTimer);
    this.#stopRefresh();
    clearTimeout(this.#liveTimer);
    this.#failAll('closed', 'the hub client was closed');
    this.#first?.reject(new HubError('closed', 'closed before the session opened'));
    this.#first = null;
    const ws = this.#ws;
    this.#ws = null;
    if (!ws || ws.readyState === 3) return;
    await new Promise((resolve) => {
      const done = setTimeout(resolve, 2000);
      ws.onclose = () => {
        clearTimeout(done);
        resolve();
      };
      ws.close(1000, 'client closing');
    });
  }

  async #open() {
    let token;
    try {
      token = await this.#token();
    } catch (err) {
      this.logger.warn('rthub: the token provider failed', err);
      return this.#dropped(1006, `token provider failed: ${err?.message ?? err}`);
    }
    if (this.state === 'closed') return;
    const query = new URLSearchParams({ token });
    this.#resuming = this.#resumeToken !== null;
    if (this.#resuming) query.set('resume', this.#resumeToken);
    const sep = this.url.includes('?') ? '&' : '?';
    let ws;
    try {
      ws = new this.WebSocket(`${this.url}${sep}${query}`);
    } catch (err) {
      return this.#dropped(1006, String(err?.message ?? err));
    }
    this.#ws = ws;
    this.#welcomed = false;
    this.#socketExp = tokenExp(token);
    this.#scheduleRefresh(this.#socketExp);
    let refusal = null;
    ws.onmessage = (event) => ws === this.#ws && this.#receive(event.data);
    ws.onerror = (event) => {
      // `ws` says why an upgrade was refused ("Unexpected server response: 401"); browsers do not
      refusal = /server response: (\d+)/.exec(event?.message ?? '')?.[1] ?? refusal;
    };
    ws.onclose = (event) => {
      if (ws !== this.#ws) return;
      const code = refusal ? Number(refusal) : event.code;
      this.#dropped(code, refusal ? `upgrade refused with HTTP ${refusal}` : event.reason);
    };
    this.#alive(this.connectTimeoutMs);
  }

  /** The token for a new socket: the string, or a fresh one from the provider. */
  async #token() {
    return typeof this.token === 'function' ? await this.token() : this.token;
  }

  // -- token refresh on the open socket --------------------------------------------------------
  /** With a provider, plans the next `session.refresh` for a socket whose token expires at
   * `exp` (refreshDelayMs: the margin before exp, or halfway for a short-lived token). */
  #scheduleRefresh(exp) {
    this.#stopRefresh();
    if (typeof this.token !== 'function') return; // a static token cannot be renewed
    const delay = refreshDelayMs(exp, Date.now(), this.tokenRefreshMarginS);
    if (delay === null) return;
    this.#refreshAttempt = 0;
    this.#armRefresh(this.#refreshGen, delay);
  }

  #armRefresh(gen, delay) {
    this.#refreshTimer = setTimeout(() => this.#refresh(gen), delay);
    this.#refreshTimer.unref?.(); // Node: a pending refresh alone keeps no process alive
  }

  #stopRefresh() {
    clearTimeout(this.#refreshTimer);
    this.#refreshGen++;
  }

  /** Asks the provider for a fresh token and hands it to the open socket, so the hub does
   * not close it at the old token's exp (4401). A failure is retried before that exp; a
   * refresh left over from a previous socket (`gen` stale) does nothing. */
  async #refresh(gen) {
    const current = () => gen === this.#refreshGen && this.state === 'open';
    if (gen === this.#refreshGen && this.#ws && !this.#welcomed) {
      // a token shorter than the welcome's wait: refresh once this socket is welcomed
      const off = this.on('welcome', () => (off(), this.#refresh(gen)));
      return;
    }
    if (!current()) return; // not open: the next socket's token comes from the provider
    let exp;
    try {
      const token = await this.token();
      if (!current()) return;
      const ack = await this.#enqueue('session.refresh', { token }, this.requestTimeoutMs, true);
      exp = typeof ack?.exp === 'number' ? ack.exp : tokenExp(token);
    } catch (err) {
      if (!current()) return;
      const delay = retryDelayMs(backoffDelay(this.#refreshAttempt++, this.reconnect), this.#socketExp, Date.now());
      this.logger.warn(`rthub: token refresh failed; ${delay === null ? 'too close to exp to retry' : `retrying in ${Math.round(delay)} ms`}`, err);
      if (delay !== null) this.#armRefresh(gen, delay);
      return;
    }
    if (gen !== this.#refreshGen) return;
    this.#socketExp = exp;
    this.emit('refreshed', { exp });
    this.#scheduleRefresh(exp);
  }

  /** The socket is dead if nothing arrives within `ms` (2 heartbeats once welcomed). */
  #alive(ms) {
    clearTimeout(this.#liveTimer);
    this.#liveTimer = setTimeout(() => {
      const ws = this.#ws;
      if (!ws) return;
      this.logger.warn(`rthub: no frame for ${ms} ms; reconnecting`);
      this.#dropped(4408, 'heartbeat timeout (client side)'); // detaches the socket first
      if (typeof ws.terminate === 'function') ws.terminate(); // `ws`: no closing handshake
      else ws.close(4000, 'heartbeat timeout');
    }, ms);
  }

  #dropped(code, reason) {
    clearTimeout(this.#liveTimer);
    this.#stopRefresh();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.onmessage = ws.onclose = ws.onerror = null;
    const welcomed = this.#welcomed;
    this.#welcomed = false;
    for (const entry of this.#pending.values()) {
      this.#settle(entry, new HubError('disconnected', `the socket dropped (${code}) before the reply`, { type: entry.type }));
    }
    this.#pending.clear();
    if (this.state === 'closed') return;
    this.emit('disconnect', { code, reason });
    this.logger.info(`rthub: socket closed ${code} ${reason ?? ''}`);
    if (!welcomed && this.#resuming && code === 4403) {
      // the resume token was refused: a fresh session, then subscribe again from our offsets
      this.#resumeToken = null;
      this.#setState('reconnecting');
      this.#open();
      return;
    }
    const staticToken = typeof this.token !== 'function';
    const expired = code === 4401 && reason === EXPIRED;
    // the socket outlived its token: a provider gives a fresh one (the reconnect resumes)
    let final = FINAL_CLOSE.get(code) ?? HTTP_REFUSAL.get(code) ?? null;
    if (expired) final = staticToken ? 'token_expired' : null;
    if (this.#first) {
      // the first connect was refused: say so to the caller rather than retry blindly
      const err = new HubError(final ?? 'unavailable', `connect failed (${code}): ${reason ?? ''}`);
      this.#first.reject(err);
      this.#first = null;
      this.#setState('closed');
      this.#failAll('closed', err.message);
      return;
    }
    if ((final && FINAL_CLOSE.has(code)) || (final && staticToken)) {
      // 4401 "token expired" with a static token lands here: nothing can renew it
      const err = new HubError(final, `the hub closed the connection for good (${code}): ${reason ?? ''}`);
      this.#setState('closed');
      this.#failAll('closed', err.message);
      this.emit('error', err);
      return;
    }
    this.#setState('reconnecting');
    const delay = backoffDelay(this.#attempt++, this.reconnect);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  // -- frames ----------------------------------------------------------------------------------
  #send(frame) {
    this.#ws.send(JSON.stringify(frame));
  }

  #receive(data) {
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
    } catch (err) {
      this.logger.warn('rthub: an unreadable frame', err);
      return;
    }
    if (this.session?.heartbeat_s) this.#alive(this.session.heartbeat_s * 2000);
    const { type, content = {} } = frame;
    if (type === 'session.welcome') return this.#welcome(content);
    if (type === 'ping') return this.#send({ type: 'pong', content: {} });
    if (frame.ref !== undefined && this.#pending.has(frame.ref)) return this.#reply(frame);
    if (frame.ref !== undefined && (type === 'ack' || type === 'error' || type === 'time.pong')) {
      this.logger.debug(`rthub: a late reply to ${frame.ref} (timed out or dropped) ignored`);
      return;
    }
    if (type === 'subscribed') return this.#restored(content);
    if (type === 'error') {
      this.emit('error', new HubError(content.code, content.message, { retryAfterMs: content.retry_after_ms ?? null }));
      return;
    }
    this.#event(frame);
  }

  #welcome(content) {
    const resumed = content.resumed === true;
    this.session = content;
    this.#welcomed = true;
    this.#resumeToken = content.resume_token ?? null;
    this.#attempt = 0;
    this.#alive((content.heartbeat_s ?? 30) * 2000);
    this.#setState('open');
    if (!resumed && this.#topics.size > 0) this.#resubscribe();
    this.emit('welcome', content);
    if (resumed) this.emit('resumed', content);
    this.#first?.resolve(content);
    this.#first = null;
    this.#pump();
  }

  #event(frame) {
    const { topic, seq } = frame;
    if (topic !== undefined && typeof seq === 'number') {
      let entry = this.#topics.get(topic);
      if (!entry) this.#topics.set(topic, (entry = { epoch: null, seq: 0, listeners: new Set() }));
      if (seq <= entry.seq) {
        this.logger.debug(`rthub: duplicate ${topic} seq ${seq} dropped`);
        return;
      }
      entry.seq = seq;
    }
    const entry = topic !== undefined ? this.#topics.get(topic) : null;
    for (const listener of entry?.listeners ?? []) {
      try {
        listener.onEvent?.(frame.content, frame);
      } catch (err) {
        this.listenerError(err, `${topic} onEvent`);
      }
    }
    this.emit(frame.type, frame.content, frame);
  }

  /** `subscribed {topic, epoch, seq, recovered}`: a topic restored by a resume, or lost. */
  #restored({ topic, epoch, seq, recovered }) {
    let entry = this.#topics.get(topic);
    if (!entry) this.#topics.set(topic, (entry = { epoch, seq, listeners: new Set() }));
    if (recovered) {
      entry.epoch = epoch; // the replay follows: our seq drops what we saw already
      return;
    }
    this.#lost(topic, entry, epoch, seq);
  }

  #lost(topic, entry, epoch, seq) {
    entry.epoch = epoch;
    entry.seq = seq;
    const info = { topic, epoch, seq };
    this.logger.info(`rthub: ${topic} not recovered; reload it`);
    for (const listener of entry.listeners) {
      try {
        listener.onReload?.(info);
      } catch (err) {
        this.listenerError(err, `${topic} onReload`);
      }
    }
    this.emit('reload', info);
  }

  /** A fresh session (resume refused or too late): follow every topic again from our
   * offsets; the hub replays what is still kept, or says `recovered: false`. */
  #resubscribe() {
    for (const [topic, entry] of this.#topics) {
      const content = entry.epoch ? { topic, since: { epoch: entry.epoch, seq: entry.seq } } : { topic };
      this.#enqueue('subscribe', content, this.requestTimeoutMs, true)
        .then((ack) => {
          if (ack.recovered) entry.epoch = ack.epoch;
          else this.#lost(topic, entry, ack.epoch, ack.seq);
        })
        .catch((err) => this.emit('error', err));
    }
  }

  // -- requests --------------------------------------------------------------------------------
  /** Sends a request; resolves with its ack's content. Pipelined: up to the session's
   * max_in_flight unanswered, the rest wait their turn (and, while disconnected, the
   * reconnect), all within `timeoutMs`. */
  request(type, content = {}, { timeoutMs } = {}) {
    if (this.state === 'closed' || this.state === 'idle') {
      return Promise.reject(new HubError('closed', `not connected (state ${this.state}): call connect() first`, { type }));
    }
    return this.#enqueue(type, content, timeoutMs ?? this.requestTimeoutMs, false);
  }

  #enqueue(type, content, timeoutMs, first) {
    return new Promise((resolve, reject) => {
      const entry = { id: this.#nextId++, type, content, resolve, reject, timer: null };
      entry.timer = setTimeout(() => {
        this.#pending.delete(entry.id);
        const at = this.#queue.indexOf(entry);
        if (at >= 0) this.#queue.splice(at, 1);
        reject(new HubError('timeout', `${type}: no reply within ${timeoutMs} ms`, { type }));
        this.#pump();
      }, timeoutMs);
      if (first) this.#queue.unshift(entry);
      else this.#queue.push(entry);
      this.#pump();
    });
  }

  #pump() {
    const limit = this.session?.max_in_flight ?? 64;
    while (this.state === 'open' && this.#ws && this.#queue.length > 0 && this.#pending.size < limit) {
      const entry = this.#queue.shift();
      this.#pending.set(entry.id, entry);
      this.#send({ type: entry.type, id: entry.id, content: entry.content });
    }
  }

  #reply(frame) {
    const entry = this.#pending.get(frame.ref);
    this.#pending.delete(frame.ref);
    const content = frame.content ?? {};
    if (frame.type === 'error') {
      this.#settle(entry, new HubError(content.code, content.message, {
        retryAfterMs: content.retry_after_ms ?? null, type: entry.type,
      }));
    } else {
      if (entry.type !== 'subscribe') this.#followed(content);
      this.#settle(entry, null, content);
    }
    this.#pump();
  }

  /** A create/join/open follows its topic and says where its stream is: keep that offset. */
  #followed(content) {
    const { topic, epoch, seq } = content;
    if (typeof topic !== 'string' || typeof epoch !== 'string' || typeof seq !== 'number') return;
    this.#position(topic, epoch, seq);
  }

  /** A follow's ack says where the stream is. A topic we track already keeps our own seq:
   * the ack may be written before events it counts, which must still pass the dedupe. */
  #position(topic, epoch, seq) {
    const entry = this.#topics.get(topic);
    if (!entry) this.#topics.set(topic, { epoch, seq, listeners: new Set() });
    else if (entry.epoch !== epoch) Object.assign(entry, { epoch, seq });
    return entry ?? this.#topics.get(topic);
  }

  #settle(entry, err, value) {
    clearTimeout(entry.timer);
    if (err) entry.reject(err);
    else entry.resolve(value);
  }

  #failAll(code, message) {
    for (const entry of [...this.#pending.values(), ...this.#queue]) {
      this.#settle(entry, new HubError(code, message, { type: entry.type }));
    }
    this.#pending.clear();
    this.#queue = [];
  }

  // -- topics ----------------------------------------------------------------------------------
  /** Follows `topic`; events go to `onEvent` (and to hub.on(type)), duplicates dropped,
   * `onReload` called when the hub cannot replay what was missed. */
  async subscribe(topic, { onEvent, onReload } = {}) {
    let entry = this.#topics.get(topic);
    if (!entry) this.#topics.set(topic, (entry = { epoch: null, seq: 0, listeners: new Set() }));
    const listener = { onEvent, onReload };
    entry.listeners.add(listener);
    let ack;
    try {
      ack = await this.request('subscribe', { topic });
    } catch (err) {
      entry.listeners.delete(listener);
      if (entry.listeners.size === 0 && entry.epoch === null) this.#topics.delete(topic);
      throw err;
    }
    if (entry.epoch !== ack.epoch) Object.assign(entry, { epoch: ack.epoch, seq: ack.seq });
    const hub = this;
    return {
      topic,
      get epoch() {
        return entry.epoch;
      },
      get seq() {
        return entry.seq;
      },
      async unsubscribe() {
        entry.listeners.delete(listener);
        if (entry.listeners.size > 0) return;
        hub.#topics.delete(topic);
        if (hub.state === 'open') await hub.request('unsubscribe', { topic });
      },
    };
  }

  /** The current WebSocket object, or null (diagnostics; tests cut its TCP connection). */
  get socket() {
    return this.#ws;
  }

  /** Where the SDK is in `topic`'s stream ({epoch, seq}), or null if it does not follow it. */
  position(topic) {
    const entry = this.#topics.get(topic);
    return entry ? { epoch: entry.epoch, seq: entry.seq } : null;
  }

  // -- clock -----------------------------------------------------------------------------------
  /** A burst of time.ping exchanges into hub.clock. */
  async syncClock(samples = 8) {
    for (let i = 0; i < samples; i++) {
      const t0 = now();
      const pong = await this.request('time.ping', { t0 });
      this.clock.add(t0, pong.t1, pong.t2, now());
    }
    return { offsetMs: this.clock.offsetMs, errorBoundMs: this.clock.errorBoundMs };
  }
}
