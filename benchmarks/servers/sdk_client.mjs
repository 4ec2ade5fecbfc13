// rthub's side of benchmarks/sdk_js.py: the JavaScript SDK (sdk/js, `Hub`) over the `ws`
// package, the scenarios of client_bench.mjs.
// Usage: node sdk_client.mjs '<config as JSON>'
// config.url: ws://127.0.0.1:<port>/ws; config.tokens: one JWT per client (sender first);
// config.reconnect: the SDK's {initialMs, maxMs} (full jitter); config.encoding: 'json' or
// 'msgpack' (binary frames, subprotocol rthub.msgpack.v1).
import WebSocket from "ws";
import { Hub } from "../../sdk/js/src/index.js";
import { main, now } from "./client_bench.mjs";

const RESEND = new Set(["disconnected", "timeout", "unavailable"]);  // the outcome unknown or
// refused before it ran (admission control's retry_after_ms): safe to send again

// what marks a chat.message frame and a pong in each encoding (msgpack: fixstr headers)
const CHAT_MESSAGE = {
  json: Buffer.from('"type":"chat.message"'),
  "rthub.msgpack.v1": Buffer.from([0xa4, ...Buffer.from("type"), 0xac, ...Buffer.from("chat.message")]),
};
const PONG = Buffer.from([0x82, 0xa4, ...Buffer.from("type"), 0xa4, ...Buffer.from("pong")]);

/** A `ws` WebSocket class that keeps a hand on each socket it makes (to cut its TCP socket)
 * and counts what passes: the chat frames that arrive (a resume may send some twice; the SDK
 * drops those by seq) and the pongs the SDK answers with. */
function watchedWebSocket(watch) {
  return class Watched extends WebSocket {
    constructor(...args) {
      super(...args);
      watch.socket = this;
      watch.opened(now());
      this.on("message", (data) => {
        // a Buffer (JSON) or an ArrayBuffer (msgpack: the SDK asks for those): a view, no copy
        if (Buffer.from(data).includes(CHAT_MESSAGE[this.protocol] ?? CHAT_MESSAGE.json)) {
          watch.frames += 1;
          watch.lastFrameAt = now();
        }
      });
    }

    send(data, ...rest) {
      const pong = typeof data === "string" ? data.startsWith('{"type":"pong"')
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength).subarray(0, PONG.length).equals(PONG);
      if (pong) watch.pongs.at(now());
      return super.send(data, ...rest);
    }
  };
}

/** Resolves waiters when a time passes a mark: `at(t)` records, `after(t)` awaits one later. */
class Marks {
  constructor() {
    this.last = -Infinity;
    this.waiters = [];
  }

  at(t) {
    this.last = t;
    this.waiters = this.waiters.filter(([mark, resolve]) => (t > mark ? resolve(t) : true));
  }

  after(mark) {
    if (this.last > mark) return Promise.resolve(this.last);
    return new Promise((resolve) => this.waiters.push([mark, resolve]));
  }
}

class Client {
  constructor(hub, watch) {
    this.hub = hub;
    this.watch = watch;
    this.listeners = [];
    this.delivered = 0;
    this.resent = 0;
  }

  async create(room) {
    await this.hub.request("room.create", { room_id: room, name: room, visibility: "public" });
  }

  async join(room) {
    await this.hub.request("room.join", { room });
    await this.hub.subscribe(`room:${room}`, {
      onEvent: (content, frame) => {
        if (frame.type !== "chat.message") return;
        this.delivered += 1;
        for (const fn of this.listeners) fn(content.text);
      },
      onReload: () => { throw new Error("recovered: false (the hub could not replay)"); },
    });
  }

  /** One message, sent again as an app would when the socket dropped before its ack or the
   * hub shed it (the same client_msg_id: the room stores it once); counted in `resent`. */
  async send(room, text) {
    const content = { room, text, client_msg_id: text.split(" ")[0] };
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.hub.request("chat.send", content);
      } catch (err) {
        if (attempt >= 5 || !RESEND.has(err.code)) throw err;
        this.resent += 1;
        await new Promise((resolve) => setTimeout(resolve, err.retryAfterMs ?? 0));
      }
    }
  }

  onMessage(fn) {
    this.listeners.push(fn);
  }

  cut() {
    this.watch.socket._socket.destroy();
  }

  /** A resume replays after the last position the client confirmed with a `pong` (the
   * hub's proof of receipt): wait for a pong sent after the last chat frame read, so that
   * the replay holds what was missed and not a heartbeat's worth of what was already read. */
  async caughtUp() {
    await this.watch.pongs.after(this.watch.lastFrameAt);
  }

  reconnected() {
    return new Promise((resolve) => {
      let attemptAt = null;
      this.watch.opened = (at) => { attemptAt = at; };
      const off = this.hub.on("welcome", (content) => {
        off();
        resolve({ attemptAt, openAt: now(), recovered: content.resumed === true });
      });
    });
  }

  /** Chat frames that reached the SDK and that it did not hand on (duplicates by seq). */
  replayed() {
    return this.watch.frames - this.delivered;
  }

  close() {
    this.hub.close();
  }
}

const adapter = {
  name: "@rthub/client (sdk/js)",
  async open(config, index) {
    const watch = { socket: null, frames: 0, lastFrameAt: 0, pongs: new Marks(), opened() {} };
    const hub = new Hub({
      url: config.url, token: config.tokens[index], WebSocket: watchedWebSocket(watch),
      requestTimeoutMs: 60000, reconnect: config.reconnect, encoding: config.encoding ?? 'json',
    });
    await hub.connect();
    return new Client(hub, watch);
  },
};

await main(adapter);
