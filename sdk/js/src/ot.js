/** Operational transformation of playlist ops: a port of rthub/playlist_ot.py (the rules and
 * their reasons are in its docstring). Pure functions; sdk/vectors/playlist_ot.json holds the
 * cases both implementations must answer alike.
 *
 * Items are [[item_id, track], ...]; an op is {insert: {index, track, item_id}},
 * {remove: {item_id}}, {move: {item_id, to_index}}, {reset: {items}} or null (a no-op). */

export function kind(op) {
  return op == null ? null : Object.keys(op)[0];
}

const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

/** The list after `op`; an op naming an item that is not there is a no-op. */
export function apply(items, op) {
  const what = kind(op);
  if (what === null) return [...items];
  const body = op[what];
  if (what === 'reset') return body.items.map(([id, track]) => [id, track]);
  const ids = items.map(([id]) => id);
  if (what === 'insert') {
    if (ids.includes(body.item_id)) return [...items];
    const index = clamp(body.index, 0, items.length);
    return [...items.slice(0, index), [body.item_id, body.track], ...items.slice(index)];
  }
  const at = ids.indexOf(body.item_id);
  if (at < 0) return [...items];
  const rest = [...items.slice(0, at), ...items.slice(at + 1)];
  if (what === 'remove') return rest;
  const to = clamp(body.to_index, 0, rest.length);
  return [...rest.slice(0, to), items[at], ...rest.slice(to)];
}

/** A target index, read in `base` (minus the moved item), as a gap in the kept list. */
function gapOf(baseIds, without, index, kept) {
  const frame = baseIds.filter((id) => id !== without);
  const at = clamp(index, 0, frame.length);
  return frame.slice(0, at).filter((id) => kept.has(id)).length;
}

const lessPair = ([g1, i1], [g2, i2]) => g1 < g2 || (g1 === g2 && i1 < i2);

/** The list that applying `a` and `b`, made concurrently on `base`, must give. */
export function merge(base, a, b) {
  const resets = [a, b].filter((op) => kind(op) === 'reset');
  if (resets.length) {
    const first = resets.reduce((x, y) => (order(y) < order(x) ? y : x));
    return apply(base, first);
  }
  const ops = [a, b].filter((op) => op != null);
  const ids = base.map(([id]) => id);
  const tracks = new Map(base);
  const removed = new Set(ops.filter((op) => kind(op) === 'remove').map((op) => op.remove.item_id));
  const moves = new Map();
  for (const op of ops) {
    if (kind(op) !== 'move') continue;
    const body = op.move;
    if (tracks.has(body.item_id) && !removed.has(body.item_id)) {
      const held = moves.get(body.item_id);
      moves.set(body.item_id, held === undefined ? body : (held.to_index <= body.to_index ? held : body));
    }
  }
  const inserts = new Map();
  for (const op of ops) {
    if (kind(op) === 'insert' && !tracks.has(op.insert.item_id) && !inserts.has(op.insert.item_id)) {
      inserts.set(op.insert.item_id, op.insert);
    }
  }
  const kept = ids.filter((id) => !removed.has(id) && !moves.has(id));
  const keptSet = new Set(kept);
  const placed = [];
  for (const [id, body] of moves) placed.push([gapOf(ids, id, body.to_index, keptSet), id, tracks.get(id)]);
  for (const [id, body] of inserts) placed.push([gapOf(ids, null, body.index, keptSet), id, body.track]);
  placed.sort((p, q) => (lessPair(p, q) ? -1 : lessPair(q, p) ? 1 : 0));
  const merged = [];
  let position = 0;
  for (const [gap, id, track] of placed) {
    while (position < gap) {
      merged.push([kept[position], tracks.get(kept[position])]);
      position += 1;
    }
    merged.push([id, track]);
  }
  for (const id of kept.slice(position)) merged.push([id, tracks.get(id)]);
  return merged;
}

/** Python's json.dumps(value, sort_keys=True): the total order of ops for two resets. */
function order(value) {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(order).join(', ')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${pyString(k)}: ${order(value[k])}`).join(', ')}}`;
  }
  if (typeof value === 'string') return pyString(value);
  return String(value);
}

function pyString(text) {
  // JSON.stringify escapes like Python except non-ASCII, which ensure_ascii writes as \uXXXX
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `a` (made on `base`) rewritten to apply after `b` (also made on `base`). */
export function transform(a, b, base) {
  const what = kind(a);
  if (what === null) return null;
  if (what === 'reset') return kind(b) !== 'reset' || order(a) <= order(b) ? a : null;
  const other = kind(b);
  if (other === 'reset') return null;
  const ids = base.map(([id]) => id);
  const x = a[what].item_id;
  const atX = ids.indexOf(x);
  const bBody = b != null && other !== null ? b[other] : {};
  const y = bBody.item_id;
  const atY = y !== undefined ? ids.indexOf(y) : -1;
  if (what === 'remove') return atX >= 0 && !(other === 'remove' && y === x) ? a : null;
  if (what === 'insert') {
    if (atX >= 0 || (other === 'insert' && y === x)) return null;
    const index = clamp(a.insert.index, 0, ids.length);
    const gap = index - (takesOut(other, atY) && atY >= 0 && atY < index ? 1 : 0);
    return { insert: { ...a.insert, index: gap + before(other, bBody, ids, atY, null, -1, gap, x) } };
  }
  // a moves x
  if (atX < 0 || (other === 'remove' && y === x)) return null;
  const to = clamp(a.move.to_index, 0, ids.length - 1);
  if (other === 'move' && y === x) {
    const theirs = clamp(bBody.to_index, 0, ids.length - 1);
    return a.move.to_index > bBody.to_index || to === theirs ? null : a;
  }
  const frameY = atY - (atY >= 0 && atX < atY ? 1 : 0); // y's place without x
  const gap = to - (takesOut(other, atY) && frameY >= 0 && frameY < to ? 1 : 0);
  const index = gap + before(other, bBody, ids, atY, x, atX, gap, x);
  return indexAfter(other, bBody, atX, atY) === index ? null : { move: { item_id: x, to_index: index } };
}

/** Does the other op take an item of `base` out of the kept list (remove or move)? */
function takesOut(other, atY) {
  return (other === 'remove' || other === 'move') && atY >= 0;
}

/** 1 if the other op places its item before ours (same gap: the smaller id first). */
function before(other, body, ids, atY, moved, atMoved, gap, item) {
  let theirGap;
  if (other === 'insert' && atY < 0) {
    const index = clamp(body.index, 0, ids.length);
    theirGap = index - (moved !== null && atMoved >= 0 && atMoved < index ? 1 : 0);
  } else if (other === 'move' && atY >= 0) {
    const to = clamp(body.to_index, 0, ids.length - 1);
    const atMovedInFrame = atMoved - (atMoved >= 0 && atY < atMoved ? 1 : 0);
    theirGap = to - (moved !== null && atMovedInFrame >= 0 && atMovedInFrame < to ? 1 : 0);
  } else {
    return 0;
  }
  return lessPair([theirGap, body.item_id], [gap, item]) ? 1 : 0;
}

/** Where the item at `atX` of `base` is after the other op (not the same item). */
function indexAfter(other, body, atX, atY) {
  if (other === 'insert' && atY < 0) return atX + (Math.max(body.index, 0) <= atX ? 1 : 0);
  if (other === 'remove' && atY >= 0) return atX - (atY < atX ? 1 : 0);
  if (other === 'move' && atY >= 0) {
    const at = atX - (atY < atX ? 1 : 0);
    return at + (body.to_index <= at ? 1 : 0);
  }
  return atX;
}

/** `op` (made on `base`) past every op of `committed` in order; and the list after them. */
export function transformAgainst(op, committed, base) {
  let state = [...base];
  for (const other of committed) {
    op = transform(op, other, state);
    state = apply(state, other);
  }
  return [op, state];
}
