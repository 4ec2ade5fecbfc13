/** The user's notification inbox over a Hub: follows `user:<id>`, loads the list, keeps the
 * unread count current from `notification` and `notification.state` events (the latter also
 * bring other devices' acks), and pages back with `loadMore`. Emits 'notification' (content)
 * and 'change' ({items, unread}). */
import { Emitter } from './emitter.js';

export class Inbox extends Emitter {
  #offs = [];
  #subscription = null;
  #filter = {};

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
    this.#filter = { state, limit };
    const ack = await this.#list({ state, limit });
    this.items = ack.items;
    this.#changed();
    return { items: this.items, unread: this.unread };
  }

  /** The next older page after the last item held (same `state` and `limit` as the last
   * load); resolves with the items it added. `more` says whether anything older is left. */
  async loadMore({ limit = this.#filter.limit } = {}) {
    const last = this.items[this.items.length - 1];
    if (!last) return (await this.load({ ...this.#filter, limit })).items;
    const ack = await this.#list({ state: this.#filter.state, limit, before: last.id });
    const held = new Set(this.items.map((item) => item.id));
    const added = ack.items.filter((item) => !held.has(item.id));
    this.items = [...this.items, ...added];
    this.#changed();
    return added;
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

  async #list({ state, limit, before }) {
    const ack = await this.hub.request('notification.list', Object.fromEntries(
      Object.entries({ state, limit, before }).filter(([, v]) => v !== undefined)));
    this.unread = ack.unread;
    this.more = ack.more ?? false;
    return ack;
  }

  #stateChanged({ id, state, unread }) {
    // an archived notification leaves the list (notification.list leaves it out too)
    this.items = this.items.flatMap((item) => {
      if (item.id !== id) return [item];
      return state === 'archived' && this.#filter.state !== 'archived' ? [] : [{ ...item, state }];
    });
    if (typeof unread === 'number') this.unread = unread;
    this.#changed();
  }

  #changed() {
    this.emit('change', { items: this.items, unread: this.unread });
  }
}
