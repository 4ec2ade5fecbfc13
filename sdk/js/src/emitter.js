/** A small event emitter: `on` returns the function that removes the listener, so callers
 * never keep a reference just to unsubscribe. A listener that throws is reported, not fatal. */
export class Emitter {
  #listeners = new Map();

  on(name, fn) {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(name, ...args) {
    const set = this.#listeners.get(name);
    if (!set) return 0;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        this.listenerError(err, name);
      }
    }
    return set.size;
  }

  /** Overridden by Hub (to its logger); a listener's bug must not break the socket. */
  listenerError(err, name) {
    console.error(`listener for ${name} threw`, err);
  }
}
