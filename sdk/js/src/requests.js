/** Requests and their replies: a queue of requests not sent yet, the ones sent and awaiting
 * their reply (at most the session's max_in_flight), and each one's timeout. */
import { HubError } from './errors.js';

export class Requests {
  #nextId = 1;
  #pending = new Map(); // id -> request sent, awaiting its reply
  #queue = []; // requests not sent yet (disconnected, or over max_in_flight)

  /** `canSend()`: the socket is open and welcomed; `limit()`: the in-flight bound;
   * `send(frame)`: writes a frame; `onAck(type, content)`: a successful reply's content;
   * `logger()`: the Hub's logger. */
  constructor({ canSend, limit, send, onAck, logger }) {
    this.canSend = canSend;
    this.limit = limit;
    this.send = send;
    this.onAck = onAck;
    this.logger = logger;
  }

  /** Queues a request (`first`: ahead of the others, for the SDK's own); resolves with its
   * ack's content, rejects with its error or a timeout after `timeoutMs`. */
  enqueue(type, content, timeoutMs, first) {
    return new Promise((resolve, reject) => {
      const entry = { id: this.#nextId++, type, content, resolve, reject, timer: null };
      entry.timer = setTimeout(() => {
        this.#pending.delete(entry.id);
        const at = this.#queue.indexOf(entry);
        if (at >= 0) this.#queue.splice(at, 1);
        reject(new HubError('timeout', `${type}: no reply within ${timeoutMs} ms`, { type }));
        this.pump();
      }, timeoutMs);
      if (first) this.#queue.unshift(entry);
      else this.#queue.push(entry);
      this.pump();
    });
  }

  /** Sends queued requests while the socket is open and fewer than the limit are in flight. */
  pump() {
    const limit = this.limit();
    while (this.canSend() && this.#queue.length > 0 && this.#pending.size < limit) {
      const entry = this.#queue.shift();
      this.#pending.set(entry.id, entry);
      this.send({ type: entry.type, id: entry.id, content: entry.content });
    }
  }

  /** Settles the request `frame` answers (true); a late reply (to a request timed out or
   * dropped) is ignored, and also true. false: the frame is no reply. */
  answered(frame) {
    if (frame.ref === undefined) return false;
    if (this.#pending.has(frame.ref)) {
      this.#reply(frame);
      return true;
    }
    if (frame.type === 'ack' || frame.type === 'error' || frame.type === 'time.pong') {
      this.logger().debug(`rthub: a late reply to ${frame.ref} (timed out or dropped) ignored`);
      return true;
    }
    return false;
  }

  #reply(frame) {
    const entry = this.#pending.get(frame.ref);
    this.#pending.delete(frame.ref);
    const content = frame.content ?? {};
    if (frame.type === 'error') {
      settle(entry, new HubError(content.code, content.message, {
        retryAfterMs: content.retry_after_ms ?? null, type: entry.type,
      }));
    } else {
      this.onAck(entry.type, content);
      settle(entry, null, content);
    }
    this.pump();
  }

  /** The socket dropped: what was sent will get no reply (the caller may resend); the
   * queue waits for the next socket. */
  dropped(code) {
    for (const entry of this.#pending.values()) {
      settle(entry, new HubError('disconnected', `the socket dropped (${code}) before the reply`, { type: entry.type }));
    }
    this.#pending.clear();
  }

  /** Rejects every request, sent or not (the hub client is closed). */
  failAll(code, message) {
    for (const entry of [...this.#pending.values(), ...this.#queue]) {
      settle(entry, new HubError(code, message, { type: entry.type }));
    }
    this.#pending.clear();
    this.#queue = [];
  }
}

function settle(entry, err, value) {
  clearTimeout(entry.timer);
  if (err) entry.reject(err);
  else entry.resolve(value);
}
