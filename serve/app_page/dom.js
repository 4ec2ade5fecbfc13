// Small DOM helpers shared by the views: build elements without innerHTML (no markup from
// the network is ever parsed), report status, format times.

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Keyed rendering: each entry keeps its node (built once, refreshed in place, moved only when
// out of order), so a click is never lost to a re-render between press and release, and a
// live region announces only what was added.
export function reconcile(list, entries, keyOf, build, refresh) {
  const nodes = new Map([...list.children].map((node) => [node.dataset.key, node]));
  let previous = null;
  entries.forEach((entry, index) => {
    const key = String(keyOf(entry));
    let node = nodes.get(key);
    if (node) {
      nodes.delete(key);
    } else {
      node = build(entry);
      node.dataset.key = key;
    }
    if (refresh) refresh(node, entry, index);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (node !== expected) list.insertBefore(node, expected);
    previous = node;
  });
  for (const stale of nodes.values()) stale.remove();
}

export function status(text, error = false) {
  const node = $("status");
  node.textContent = text;
  node.classList.toggle("error", error);
}

// Says something to screen readers only (a notification arriving in another view).
export function announce(text) {
  $("announce").textContent = text;
}

// Reports a failed request in the status line instead of an unhandled rejection.
export function guard(what, fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      status(`${what} failed: ${err.code ? err.code + ": " : ""}${err.message}`, true);
      return undefined;
    }
  };
}

// The pressed submit button's value ("join" or "create") of a form with two.
export function submitted(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.submitter ? event.submitter.value : "");
  });
}

export function trackName(track) {
  if (track === null || track === undefined) return "none";
  if (typeof track === "string") return track;
  if (typeof track === "object" && (track.title || track.id)) return String(track.title || track.id);
  return JSON.stringify(track);
}

export function clockTime(ms) {
  const total = Math.max(0, ms);
  const m = Math.floor(total / 60000);
  const s = ((total % 60000) / 1000).toFixed(3).padStart(6, "0");
  return `${m}:${s}`;
}

export function hourMinute(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function signedMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  return `${ms >= 0 ? "+" : "−"}${Math.abs(ms).toFixed(1)} ms`;
}
