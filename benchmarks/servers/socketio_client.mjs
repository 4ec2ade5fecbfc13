// Socket.IO's side of benchmarks/sdk_js.py: socket.io-client 4.8 against socketio_server.js
// (started with --recovery), the scenarios of client_bench.mjs.
// Usage: node socketio_client.mjs '<config as JSON>'
// config.url: http://127.0.0.1:<port>; config.reconnect: {initialMs, maxMs, randomization}.
import { io } from "socket.io-client";
import { main, now } from "./client_bench.mjs";

/** At most `size` unacknowledged emits, as the hub's max_in_flight bounds the SDK's. */
class Window {
  constructor(size) {
    this.free = size;
    this.waiting = [];
  }

  async take() {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise((resolve) => this.waiting.push(resolve));
  }

  give() {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

class Client {
  constructor(socket, window) {
    this.socket = socket;
    this.window = new Window(window);
  }

  async join(room) {
    const joined = new Promise((resolve) => this.socket.once("joined", resolve));
    this.socket.emit("join", room);
    await joined;
  }

  create(room) {
    return this.join(room);  // a Socket.IO room exists once someone is in it
  }

  async send(room, text) {
    await this.window.take();
    return new Promise((resolve) => {
      this.socket.emit("send", { room, payload: text }, (ack) => {
        this.window.give();
        resolve(ack);
      });
    });
  }

  onMessage(fn) {
    this.socket.on("msg", (payload) => fn(payload));  // (a second argument: its offset)
  }

  cut() {
    this.socket.io.engine.transport.ws._socket.destroy();
  }

  /** The client sends the offset of the last packet it read when it reconnects: the server
   * needs no word from it in between. */
  async caughtUp() {}

  reconnected() {
    const manager = this.socket.io;
    return new Promise((resolve) => {
      let attemptAt = null;
      manager.once("reconnect_attempt", () => { attemptAt = now(); });
      this.socket.once("connect", () => resolve(
        { attemptAt, openAt: now(), recovered: this.socket.recovered }));
    });
  }

  close() {
    this.socket.close();
  }
}

const adapter = {
  name: "socket.io-client 4.8",
  async open(config) {
    const { initialMs, maxMs, randomization } = config.reconnect;
    const socket = io(config.url, {
      transports: ["websocket"], reconnectionDelay: initialMs, reconnectionDelayMax: maxMs,
      randomizationFactor: randomization,
    });
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    return new Client(socket, config.window);
  },
};

await main(adapter);
