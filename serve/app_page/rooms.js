// Rooms: join or create, history (paged back by seq), send, typing, read receipts, presence.
// The room's stream comes through hub.subscribe (the SDK resumes it and drops duplicates);
// typing and presence are ephemeral events read from the hub by topic.

import { $, guard, h, hourMinute, reconcile, status, submitted } from "./dom.js";

const PAGE = 50;
const TYPING_EVERY_MS = 2000;

class Room {
  constructor(id) {
    this.id = id;
    this.messages = new Map(); // message_id -> message, shown in seq order
    this.more = true;
    this.receipts = new Map(); // user -> seq read up to
    this.typing = new Set();
    this.members = new Map(); // user -> name
    this.readSent = 0;
    this.subscription = null;
  }

  oldestSeq() {
    let oldest = Infinity;
    for (const m of this.messages.values()) oldest = Math.min(oldest, m.seq);
    return oldest === Infinity ? undefined : oldest;
  }

  lastSeq() {
    let last = 0;
    for (const m of this.messages.values()) last = Math.max(last, m.seq);
    return last;
  }
}

export class Rooms {
  constructor(hub, me) {
    this.hub = hub;
    this.me = me;
    this.rooms = new Map();
    this.current = null;
    this.typingSentAt = 0;
    submitted($("room-form"), guard("Room", (action) =>
      this.enter($("room-id").value.trim(), action === "create")));
    $("send-form").addEventListener("submit", (event) => {
      event.preventDefault();
      guard("Send", () => this.send())();
    });
    $("message").addEventListener("input", () => this.typed());
    $("older").addEventListener("click", guard("History", () => this.older()));
    hub.on("chat.typing", (c) => this.onTyping(c));
    hub.on("presence.join", (c, f) => this.onPresence(c, f, true));
    hub.on("presence.leave", (c, f) => this.onPresence(c, f, false));
    document.addEventListener("visibilitychange", () => this.markRead());
  }

  async enter(id, create) {
    if (!id) return;
    if (create) {
      await this.hub.request("room.create", { room_id: id, name: id, visibility: "public" });
    } else {
      await this.hub.request("room.join", { room: id });
    }
    let room = this.rooms.get(id);
    if (!room) {
      room = new Room(id);
      this.rooms.set(id, room);
      room.subscription = await this.hub.subscribe(`room:${id}`, {
        onEvent: (content, frame) => this.onEvent(room, frame.type, content),
        onReload: () => this.reload(room),
      });
    }
    await this.reload(room);
    await this.loadPresence(room);
    this.show(room);
    $("message").focus();
    status(`In room ${id}.`);
  }

  async reload(room) {
    const page = await this.hub.request("chat.history", { room: room.id, limit: PAGE });
    room.messages.clear();
    this.addMessages(room, page.messages);
    room.more = page.more;
    if (room === this.current) this.render();
  }

  async older() {
    const room = this.current;
    if (!room || !room.more) return;
    const page = await this.hub.request("chat.history",
      { room: room.id, before_seq: room.oldestSeq(), limit: PAGE });
    this.addMessages(room, page.messages);
    room.more = page.more;
    this.render();
  }

  async loadPresence(room) {
    const found = await this.hub.request("presence.list", { topic: `room:${room.id}` });
    room.members = new Map(found.members.map((m) => [m.user, m.name || m.user]));
  }

  addMessages(room, messages) {
    for (const m of messages) room.messages.set(m.message_id, m);
  }

  onEvent(room, type, content) {
    if (type === "chat.message") {
      room.messages.set(content.message_id, content);
      room.typing.delete(content.sender);
    } else if (type === "chat.edited" || type === "chat.deleted") {
      const m = room.messages.get(content.message_id);
      if (m) Object.assign(m, type === "chat.deleted" ? { deleted: true, text: "" } : { text: content.text });
    } else if (type === "chat.read") {
      room.receipts.set(content.user, Math.max(room.receipts.get(content.user) || 0, content.seq));
    } else {
      return;
    }
    if (room === this.current) {
      this.render();
      if (type === "chat.message") this.markRead();
    }
  }

  onTyping(content) {
    const room = this.rooms.get(content.room);
    if (!room || content.user === this.me) return;
    if (content.typing) room.typing.add(content.user); else room.typing.delete(content.user);
    if (room === this.current) this.renderTyping();
  }

  onPresence(content, frame, joined) {
    const topic = (frame && frame.topic) || `room:${content.room}`;
    if (!topic.startsWith("room:")) return;
    const room = this.rooms.get(topic.slice(5));
    if (!room) return;
    if (joined) room.members.set(content.user, content.name || content.user);
    else room.members.delete(content.user);
    if (room === this.current) this.renderPresence();
  }

  show(room) {
    this.current = room;
    $("room").hidden = false;
    $("room-title").textContent = `# ${room.id}`;
    this.renderList();
    this.render();
    this.markRead();
  }

  async send() {
    const room = this.current;
    const input = $("message");
    const text = input.value.trim();
    if (!room || !text) return;
    const clientMsgId = crypto.randomUUID();
    input.value = "";
    this.typingSentAt = 0;
    await this.hub.request("chat.send", { room: room.id, text, client_msg_id: clientMsgId });
  }

  typed() {
    const room = this.current;
    if (!room) return;
    const typing = $("message").value.length > 0;
    const now = Date.now();
    if (typing && now - this.typingSentAt < TYPING_EVERY_MS) return;
    this.typingSentAt = typing ? now : 0;
    this.hub.request("chat.typing", { room: room.id, typing }).catch(() => {});
  }

  // Receipts move forward only, and only for what is on screen in a visible page.
  markRead() {
    const room = this.current;
    if (!room || document.visibilityState !== "visible") return;
    const seq = room.lastSeq();
    if (seq <= room.readSent) return;
    room.readSent = seq;
    this.hub.request("chat.read", { room: room.id, seq }).catch(() => { room.readSent = 0; });
  }

  renderList() {
    $("room-list").replaceChildren(...[...this.rooms.keys()].map((id) => h("li", {},
      h("button", { type: "button", "aria-current": this.current && this.current.id === id ? "true" : "false",
                    onclick: () => this.show(this.rooms.get(id)) }, `# ${id}`))));
  }

  render() {
    const room = this.current;
    const list = $("messages");
    const ordered = [...room.messages.values()].sort((a, b) => a.seq - b.seq);
    // each reader's receipt goes under the last message it covers
    const readers = new Map();
    for (const [user, seq] of room.receipts) {
      if (user === this.me) continue;
      const last = ordered.filter((m) => m.seq <= seq && m.sender !== user).pop();
      if (last) readers.set(last.message_id, [...(readers.get(last.message_id) || []), user]);
    }
    const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    reconcile(list, ordered, (m) => m.message_id, (m) => h("li", { dataset: { seq: m.seq, sender: m.sender } },
      h("span", { class: "sender" }, m.sender), h("span", { class: "text" }),
      h("time", { datetime: m.ts }, hourMinute(m.ts))),
    (li, m) => this.refreshMessage(li, m, readers.get(m.message_id)));
    if (pinned) list.scrollTop = list.scrollHeight;
    $("older").hidden = !room.more;
    this.renderTyping();
    this.renderPresence();
  }

  refreshMessage(li, m, readers) {
    const text = m.deleted ? "(deleted)" : m.text;
    const receipt = readers ? `Read by ${readers.sort().join(", ")}` : "";
    const textNode = li.querySelector(".text");
    if (textNode.textContent !== text) textNode.textContent = text;
    let receiptNode = li.querySelector(".receipt");
    if (receipt && !receiptNode) {
      receiptNode = li.appendChild(h("span", { class: "receipt", "data-testid": "receipt" }));
    }
    if (!receipt && receiptNode) receiptNode.remove();
    else if (receiptNode && receiptNode.textContent !== receipt) receiptNode.textContent = receipt;
  }

  renderTyping() {
    const who = [...this.current.typing].sort();
    $("typing").textContent = who.length === 0 ? ""
      : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
  }

  renderPresence() {
    const names = [...this.current.members.values()].sort();
    $("room-presence").textContent = names.length ? `Here: ${names.join(", ")}` : "";
  }
}
