/** Where the client is in each topic's stream: per topic the epoch and last seq seen (to
 * drop duplicates), its listeners, and what to follow again after a fresh session. */

export class Topics {
  #map = new Map(); // topic -> {epoch, seq, listeners: Set<{onEvent, onReload}>}

  /** `logger()`: the Hub's logger; `listenerError(err, name)` reports a listener that
   * threw; `emit(name, value)` raises the Hub's `reload` and `error` events. */
  constructor({ logger, listenerError, emit }) {
    this.logger = logger;
    this.listenerError = listenerError;
    this.emit = emit;
  }

  get size() {
    return this.#map.size;
  }

  #entry(topic, epoch = null, seq = 0) {
    let entry = this.#map.get(topic);
    if (!entry) this.#map.set(topic, (entry = { epoch, seq, listeners: new Set() }));
    return entry;
  }

  /** Hands an event to its topic's listeners; false for a duplicate (seq seen already). */
  deliver(frame) {
    const { topic, seq } = frame;
    if (topic !== undefined && typeof seq === 'number') {
      const entry = this.#entry(topic);
      if (seq <= entry.seq) {
        this.logger().debug(`rthub: duplicate ${topic} seq ${seq} dropped`);
        return false;
      }
      entry.seq = seq;
    }
    const entry = topic !== undefined ? this.#map.get(topic) : null;
    for (const listener of entry?.listeners ?? []) {
      try {
        listener.onEvent?.(frame.content, frame);
      } catch (err) {
        this.listenerError(err, `${topic} onEvent`);
      }
    }
    return true;
  }

  /** `subscribed {topic, epoch, seq, recovered}`: a topic restored by a resume, or lost. */
  restored({ topic, epoch, seq, recovered }) {
    const entry = this.#entry(topic, epoch, seq);
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
    this.logger().info(`rthub: ${topic} not recovered; reload it`);
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
   * offsets with `subscribe(content)`; the hub replays what is still kept, or says
   * `recovered: false`. */
  resubscribe(subscribe) {
    for (const [topic, entry] of this.#map) {
      const content = entry.epoch ? { topic, since: { epoch: entry.epoch, seq: entry.seq } } : { topic };
      subscribe(content)
        .then((ack) => {
          if (ack.recovered) entry.epoch = ack.epoch;
          else this.#lost(topic, entry, ack.epoch, ack.seq);
        })
        .catch((err) => this.emit('error', err));
    }
  }

  /** A create/join/open follows its topic and says where its stream is: keep that offset.
   * A topic we track already keeps our own seq: the ack may be written before events it
   * counts, which must still pass the dedupe. */
  followed({ topic, epoch, seq }) {
    if (typeof topic !== 'string' || typeof epoch !== 'string' || typeof seq !== 'number') return;
    const entry = this.#map.get(topic);
    if (!entry) this.#map.set(topic, { epoch, seq, listeners: new Set() });
    else if (entry.epoch !== epoch) Object.assign(entry, { epoch, seq });
  }

  /** Adds a listener to `topic` (tracked from now on); returns the topic's entry. */
  listen(topic, listener) {
    const entry = this.#entry(topic);
    entry.listeners.add(listener);
    return entry;
  }

  /** Removes a listener whose subscribe failed; a topic with no listener and no position
   * is forgotten. */
  unlisten(topic, entry, listener) {
    entry.listeners.delete(listener);
    if (entry.listeners.size === 0 && entry.epoch === null) this.#map.delete(topic);
  }

  /** The handle `Hub.subscribe` returns once `ack` (the subscribe's) has come: the topic's
   * position, and `unsubscribe`, which calls `unfollow()` when the last listener goes. */
  subscription(topic, entry, listener, ack, unfollow) {
    if (entry.epoch !== ack.epoch) Object.assign(entry, { epoch: ack.epoch, seq: ack.seq });
    const map = this.#map;
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
        map.delete(topic);
        await unfollow();
      },
    };
  }

  /** Where the SDK is in `topic`'s stream ({epoch, seq}), or null if it does not follow it. */
  position(topic) {
    const entry = this.#map.get(topic);
    return entry ? { epoch: entry.epoch, seq: entry.seq } : null;
  }
}
