/** The user's notification inbox over a Hub: follows `user:<id>`, loads the list, keeps the
 * unread count current from `notification` and `notification.state` events (the latter also
 * bring other devices' acks). Emits 'notification' (content) and 'change' ({items, unread}). */
import { Emitter } from './emitter.js';

export class Inbox extends Emitter {
  #offs = [];
  #subscription = null;

  constructor(hub) {
    super();
    this.hub = hub;
    this.items = [];
    this.unread = 0;
    this.more = false;
  }

  get topic() {
    return `user:${this.hub.session?.user_id}`;
  }

  /** Follows the user's stream and reads the newest notifications; resolves with {items, unread}. */
  async load({ state, limit } = {}) {
    if (!this.#subscription) {
      this.#offs.push(
        this.hub.on('notification', (content, frame) => frame.topic === this.topic && this.#arrived(content)),
        this.hub.on('notification.state', (content, frame) => frame.topic === this.topic && this.#stateChanged(content)),
        this.hub.on('reload', (info) => info.topic === this.topic && this.load().catch((err) => this.emit('error', err))),
      );
      this.#subscription = await this.hub.subscribe(this.topic);
    }
    const ack = await this.hub.request('notification.list', Object.fromEntries(Object.entries({ state, limit }).filter(([, v]) => v !== undefined)));
    this.items = ack.items;
    this.unread = ack.unread;
    this.more = ack.more ?? false;
    this.#changed();
    return { items: this.items, unread: this.unread };
  }

  /** Marks a notification seen, read or archived (states only move forward). */
  async ack(id, state) {
    const reply = await this.hub.request('notification.ack', { id, state });
    this.#stateChanged({ id, state: reply.state ?? state, unread: reply.unread ?? this.unread });
    return reply;
  }

  async close() {
    for (const off of this.#offs.splice(0)) off();
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe();
  }

  #arrived(content) {
    if (!this.items.some((item) => item.id === content.id)) this.items = [content, ...this.items];
    if (typeof content.unread === 'number') this.unread = content.unread;
    else this.unread += 1;
    this.emit('notification', content);
    this.#changed();
  }

  #stateChanged({ id, state, unread }) {
    this.items = this.items.map((item) => (item.id === id ? { ...item, state } : item));
    if (typeof unread === 'number') this.unread = unread;
    this.#changed();
  }

  #changed() {
    this.emit('change', { items: this.items, unread: this.unread });
  }
}
