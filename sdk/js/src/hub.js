/** One connection to the hub (PROTOCOL.md v1) that survives drops: it reconnects with
 * backoff, resumes the session (or subscribes again from its offsets), drops duplicate
 * events by `seq`, answers heartbeats, and matches pipelined replies to their requests.
 * This file is the connection loop and the dispatch of frames; topics.js keeps the stream
 * positions, requests.js the pending requests, transport.js the socket and its close
 * codes, token.js the token's renewal. */
import { backoffDelay } from './backoff.js';
import { ClockEstimator, syncClock } from './clock.js';
import { CODECS, codecFor } from './codec.js';
import { Emitter } from './emitter.js';
import { HubError } from './errors.js';
import { Requests } from './requests.js';
import { TokenRefresher } from './token.js';
import { Topics } from './topics.js';
import { classifyClose, closeGently, detach, kill, socketUrl, watch } from './transport.js';

const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

export class Hub extends Emitter {
  #ws = null;
  #welcomed = false; // the current socket has had its session.welcome
  #resumeToken = null;
  #resuming = false; // the current socket asked to resume
  #attempt = 0;
  #retryTimer = null;
  #liveTimer = null;
  #first = null; // {resolve, reject} of connect() until the first welcome
  #topics = new Topics({
    logger: () => this.logger,
    listenerError: (err, name) => this.listenerError(err, name),
    emit: (name, value) => this.emit(name, value),
  });
  #requests = new Requests({
    canSend: () => this.state === 'open' && this.#ws !== null,
    limit: () => this.session?.max_in_flight ?? 64,
    send: (frame) => this.#send(frame),
    logger: () => this.logger,
    onAck: (type, content) => type !== 'subscribe' && this.#topics.followed(content),
  });
  #refresher = new TokenRefresher(this, {
    renew: (token) => this.#requests.enqueue('session.refresh', { token }, this.requestTimeoutMs, true),
    unwelcomed: () => this.#ws !== null && !this.#welcomed,
  });

  constructor({
    url,
    token,
    tokenRefreshMarginS = 60,
    WebSocket = globalThis.WebSocket,
    encoding = 'json',
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
    this.encoding = encoding;
    this.codec = codecFor(encoding);
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
    this.#refresher.stop();
    clearTimeout(this.#liveTimer);
    this.#requests.failAll('closed', 'the hub client was closed');
    this.#first?.reject(new HubError('closed', 'closed before the session opened'));
    this.#first = null;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) await closeGently(ws);
  }

  async #open() {
    let token;
    try {
      token = typeof this.token === 'function' ? await this.token() : this.token;
    } catch (err) {
      this.logger.warn('rthub: the token provider failed', err);
      return this.#dropped(1006, `token provider failed: ${err?.message ?? err}`);
    }
    if (this.state === 'closed') return;
    this.#resuming = this.#resumeToken !== null;
    let ws;
    try {
      ws = new this.WebSocket(socketUrl(this.url, token, this.#resumeToken), [this.codec.subprotocol]);
      ws.binaryType = 'arraybuffer'; // a browser's default is Blob, which cannot be read at once
    } catch (err) {
      return this.#dropped(1006, String(err?.message ?? err));
    }
    this.#ws = ws;
    this.#welcomed = false;
    this.#refresher.opened(token);
    watch(ws, {
      onData: (data) => ws === this.#ws && this.#receive(data),
      onClose: (code, reason) => ws === this.#ws && this.#dropped(code, reason),
    });
    this.#alive(this.connectTimeoutMs);
  }

  /** The socket is dead if nothing arrives within `ms` (2 heartbeats once welcomed). */
  #alive(ms) {
    clearTimeout(this.#liveTimer);
    this.#liveTimer = setTimeout(() => {
      const ws = this.#ws;
      if (!ws) return;
      this.logger.warn(`rthub: no frame for ${ms} ms; reconnecting`);
      this.#dropped(4408, 'heartbeat timeout (client side)'); // detaches the socket first
      kill(ws);
    }, ms);
  }

  #dropped(code, reason) {
    clearTimeout(this.#liveTimer);
    this.#refresher.stop();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) detach(ws);
    const welcomed = this.#welcomed;
    this.#welcomed = false;
    this.#requests.dropped(code);
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
    const { final, forGood } = classifyClose(code, reason, typeof this.token !== 'function');
    if (this.#first) {
      // the first connect was refused: say so to the caller rather than retry blindly
      const err = new HubError(final ?? 'unavailable', `connect failed (${code}): ${reason ?? ''}`);
      this.#first.reject(err);
      this.#first = null;
      this.#setState('closed');
      this.#requests.failAll('closed', err.message);
      return;
    }
    if (forGood) {
      // 4401 "token expired" with a static token lands here: nothing can renew it
      const err = new HubError(final, `the hub closed the connection for good (${code}): ${reason ?? ''}`);
      this.#setState('closed');
      this.#requests.failAll('closed', err.message);
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

  #send(frame) {
    this.#ws.send(this.#wire().encode(frame));
  }

  /** The socket's codec: the one asked for, unless the hub chose none (an older hub: JSON). */
  #wire() {
    return this.#ws?.protocol === this.codec.subprotocol ? this.codec : CODECS.json;
  }

  #receive(data) {
    let frame;
    try {
      frame = this.#wire().decode(data);
    } catch (err) {
      this.logger.warn('rthub: an unreadable frame', err);
      return;
    }
    if (this.session?.heartbeat_s) this.#alive(this.session.heartbeat_s * 2000);
    const { type, content = {} } = frame;
    if (type === 'session.welcome') return this.#welcome(content);
    if (type === 'ping') return this.#send({ type: 'pong', content: {} });
    if (this.#requests.answered(frame)) return;
    if (type === 'subscribed') return this.#topics.restored(content);
    if (type === 'error') {
      this.emit('error', new HubError(content.code, content.message, { retryAfterMs: content.retry_after_ms ?? null }));
      return;
    }
    if (this.#topics.deliver(frame)) this.emit(frame.type, frame.content, frame);
  }

  #welcome(content) {
    const resumed = content.resumed === true;
    this.session = content;
    this.#welcomed = true;
    this.#resumeToken = content.resume_token ?? null;
    this.#attempt = 0;
    this.#alive((content.heartbeat_s ?? 30) * 2000);
    this.#setState('open');
    if (!resumed && this.#topics.size > 0) {
      this.#topics.resubscribe((follow) => this.#requests.enqueue('subscribe', follow, this.requestTimeoutMs, true));
    }
    this.emit('welcome', content);
    if (resumed) this.emit('resumed', content);
    this.#first?.resolve(content);
    this.#first = null;
    this.#requests.pump();
  }

  /** Sends a request; resolves with its ack's content. Pipelined: up to the session's
   * max_in_flight unanswered, the rest wait their turn (and, while disconnected, the
   * reconnect), all within `timeoutMs`. */
  request(type, content = {}, { timeoutMs } = {}) {
    if (this.state === 'closed' || this.state === 'idle') {
      return Promise.reject(new HubError('closed', `not connected (state ${this.state}): call connect() first`, { type }));
    }
    return this.#requests.enqueue(type, content, timeoutMs ?? this.requestTimeoutMs, false);
  }

  /** Follows `topic`; events go to `onEvent` (and to hub.on(type)), duplicates dropped,
   * `onReload` called when the hub cannot replay what was missed. */
  async subscribe(topic, { onEvent, onReload } = {}) {
    const listener = { onEvent, onReload };
    const entry = this.#topics.listen(topic, listener);
    let ack;
    try {
      ack = await this.request('subscribe', { topic });
    } catch (err) {
      this.#topics.unlisten(topic, entry, listener);
      throw err;
    }
    const unsubscribe = () => (this.state === 'open' ? this.request('unsubscribe', { topic }) : null);
    return this.#topics.subscription(topic, entry, listener, ack, unsubscribe);
  }

  /** The current WebSocket object, or null (diagnostics; tests cut its TCP connection). */
  get socket() {
    return this.#ws;
  }

  /** Where the SDK is in `topic`'s stream ({epoch, seq}), or null if it does not follow it. */
  position(topic) {
    return this.#topics.position(topic);
  }

  /** A burst of time.ping exchanges into hub.clock. */
  syncClock(samples = 8) {
    return syncClock(this.clock, (content) => this.request('time.ping', content), samples);
  }
}
