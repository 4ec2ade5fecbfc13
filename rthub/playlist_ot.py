"""Operational transformation of playlist ops: pure functions, no I/O, shared by the
Playlist entity and the client library.

A playlist is an ordered list of unique ``item_id``s (each carrying a track). Ops:

* ``{"insert": {"index", "track", "item_id"}}``: a new item at ``index``;
* ``{"remove": {"item_id"}}``;
* ``{"move": {"item_id", "to_index"}}``: ``to_index`` counts positions after the item is
  taken out (json0's list move);
* ``{"reset": {"items": [[item_id, track], ...]}}``: the whole list (a revert);
* ``None``: a no-op (what a transformed op becomes when nothing is left of it).

Transformation is *state-aware*: ``transform(a, b, base)`` is ``a`` rewritten to apply after
``b``, where both were made on the list ``base``. It is defined through one symmetric
``merge(base, a, b)``, the list both orders must reach; ``transform`` returns the op that
takes ``base·b`` there. So TP1 (``base·a·transform(b, a) == base·b·transform(a, b)``) holds
by construction, and the rules live in one place, ``merge``:

* both insert at the same place: ordered by ``item_id`` (deterministic, order-free);
* remove vs remove of one item: one removal (the other op becomes a no-op);
* move vs remove of one item: the remove wins;
* move vs move of one item: the move to the lower index wins (ties land in the same place);
* any target index is read as a gap between the items of ``base`` that both ops keep, so
  an insert next to an item another op moved away stays where it was aimed;
* reset vs anything: the reset wins whole (two resets: the first in a fixed order of ops).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Op = dict[str, Any] | None
Items = list[tuple[str, Any]]  # [(item_id, track)] in order


def kind(op: Op) -> str | None:
    return None if op is None else next(iter(op))


def apply(items: Items, op: Op) -> Items:
    """The list after ``op``; an op naming an item that is not there is a no-op."""
    what = kind(op)
    if what is None:
        return list(items)
    assert op is not None
    body = op[what]
    if what == "reset":
        return [(item_id, track) for item_id, track in body["items"]]
    ids = [item_id for item_id, _ in items]
    if what == "insert":
        if body["item_id"] in ids:
            return list(items)
        index = min(max(body["index"], 0), len(items))
        return [*items[:index], (body["item_id"], body["track"]), *items[index:]]
    if body["item_id"] not in ids:
        return list(items)
    at = ids.index(body["item_id"])
    rest = [*items[:at], *items[at + 1:]]
    if what == "remove":
        return rest
    to = min(max(body["to_index"], 0), len(rest))
    return [*rest[:to], items[at], *rest[to:]]


def _gap(base_ids: Sequence[str], without: str | None, index: int, kept: set[str]) -> int:
    """A target index, read in ``base`` (minus the moved item), as a gap in the kept list."""
    frame = [i for i in base_ids if i != without]
    index = min(max(index, 0), len(frame))
    return sum(1 for i in frame[:index] if i in kept)


def _move_winner(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two moves of one item: the lower target wins (on a tie both land in one place)."""
    return a if a["to_index"] <= b["to_index"] else b


def merge(base: Items, a: Op, b: Op) -> Items:
    """The list that applying ``a`` and ``b``, made concurrently on ``base``, must give."""
    resets = [op for op in (a, b) if kind(op) == "reset"]
    if resets:
        return apply(base, min(resets, key=_order))
    ops = [op for op in (a, b) if op is not None]
    ids = [item_id for item_id, _ in base]
    tracks = dict(base)
    removed = {op["remove"]["item_id"] for op in ops if kind(op) == "remove"}
    moves: dict[str, dict[str, Any]] = {}
    for op in ops:
        if kind(op) == "move":
            body = op["move"]
            if body["item_id"] in tracks and body["item_id"] not in removed:
                held = moves.get(body["item_id"])
                moves[body["item_id"]] = body if held is None else _move_winner(held, body)
    inserts = {}
    for op in ops:
        if kind(op) == "insert" and op["insert"]["item_id"] not in tracks:
            inserts.setdefault(op["insert"]["item_id"], op["insert"])
    kept = [i for i in ids if i not in removed and i not in moves]
    kept_set = set(kept)
    placed: list[tuple[int, str, Any]] = []  # (gap in kept, item_id, track)
    for item_id, body in moves.items():
        placed.append((_gap(ids, item_id, body["to_index"], kept_set), item_id,
                       tracks[item_id]))
    for item_id, body in inserts.items():
        placed.append((_gap(ids, None, body["index"], kept_set), item_id, body["track"]))
    placed.sort(key=lambda p: (p[0], p[1]))
    merged: Items = []
    position = 0
    for gap, item_id, track in placed:
        while position < gap:
            merged.append((kept[position], tracks[kept[position]]))
            position += 1
        merged.append((item_id, track))
    merged.extend((i, tracks[i]) for i in kept[position:])
    return merged


def _order(op: Op) -> str:
    """A total order of ops, for the one rule that must pick between two whole lists."""
    return json.dumps(op, sort_keys=True)


def transform(a: Op, b: Op, base: Items) -> Op:
    """``a`` (made on ``base``) rewritten to apply after ``b`` (also made on ``base``).

    Computed with index arithmetic (two ops touch at most two items, so the merged list
    never has to be built); ``transform_by_merge`` is the specification it must equal, and
    the property tests hold the two together.
    """
    what = kind(a)
    if what is None:
        return None
    assert a is not None
    if what == "reset":  # two reverts at once: the first in ``_order`` wins
        return a if kind(b) != "reset" or _order(a) <= _order(b) else None
    other = kind(b)
    if other == "reset":
        return None
    ids = [i for i, _ in base]
    x = a[what]["item_id"]
    at_x = _find(ids, x)
    b_body = b[other] if b is not None and other is not None else {}
    y = b_body.get("item_id")
    at_y = _find(ids, y) if y is not None else -1
    if what == "remove":
        return a if at_x >= 0 and not (other == "remove" and y == x) else None
    if what == "insert":
        if at_x >= 0 or (other == "insert" and y == x):
            return None
        index = min(max(a["insert"]["index"], 0), len(ids))
        gap = index - (1 if _takes_out(other, b_body, at_y) and 0 <= at_y < index else 0)
        return {"insert": {**a["insert"], "index": gap + _before(other, b_body, ids, at_y,
                                                                  None, -1, gap, x)}}
    # a moves x
    if at_x < 0 or (other == "remove" and y == x):
        return None
    to = min(max(a["move"]["to_index"], 0), len(ids) - 1)
    if other == "move" and y == x:
        theirs = min(max(b_body["to_index"], 0), len(ids) - 1)
        return None if a["move"]["to_index"] > b_body["to_index"] or to == theirs else a
    frame_y = at_y - (1 if at_y >= 0 and at_x < at_y else 0)  # y's place without x
    gap = to - (1 if _takes_out(other, b_body, at_y) and 0 <= frame_y < to else 0)
    index = gap + _before(other, b_body, ids, at_y, x, at_x, gap, x)
    return None if _index_after(other, b_body, at_x, at_y) == index else {
        "move": {"item_id": x, "to_index": index}}


def _find(ids: list[str], item_id: str) -> int:
    try:
        return ids.index(item_id)
    except ValueError:
        return -1


def _takes_out(other: str | None, body: dict[str, Any], at_y: int) -> bool:
    """Does the other op take an item of ``base`` out of the kept list (remove or move)?"""
    return other in ("remove", "move") and at_y >= 0


def _before(other: str | None, body: dict[str, Any], ids: list[str], at_y: int,
            moved: str | None, at_moved: int, gap: int, item: str) -> int:
    """1 if the other op places its item before ours (same gap: the smaller id first)."""
    if other == "insert" and at_y < 0:
        index = min(max(body["index"], 0), len(ids))
        their_gap = index - (1 if moved is not None and 0 <= at_moved < index else 0)
    elif other == "move" and at_y >= 0:
        to = min(max(body["to_index"], 0), len(ids) - 1)
        at_moved_in_frame = at_moved - (1 if at_moved >= 0 and at_y < at_moved else 0)
        their_gap = to - (1 if moved is not None and 0 <= at_moved_in_frame < to else 0)
    else:
        return 0
    return 1 if (their_gap, body["item_id"]) < (gap, item) else 0


def _index_after(other: str | None, body: dict[str, Any], at_x: int, at_y: int) -> int:
    """Where the item at ``at_x`` of ``base`` is after the other op (not the same item)."""
    if other == "insert" and at_y < 0:
        return at_x + (1 if min(max(body["index"], 0), 1 << 62) <= at_x else 0)
    if other == "remove" and at_y >= 0:
        return at_x - (1 if at_y < at_x else 0)
    if other == "move" and at_y >= 0:
        at = at_x - (1 if at_y < at_x else 0)
        return at + (1 if body["to_index"] <= at else 0)
    return at_x


def transform_by_merge(a: Op, b: Op, base: Items) -> Op:
    """The specification of ``transform``: the op that takes ``base·b`` to ``merge``."""
    what = kind(a)
    if what is None:
        return None
    assert a is not None
    if what == "reset":
        return a if kind(b) != "reset" or _order(a) <= _order(b) else None
    if kind(b) == "reset":
        return None
    target = merge(base, a, b)
    after_b = apply(base, b)
    item_id = a[what]["item_id"]
    in_target = [i for i, _ in target]
    present = any(i == item_id for i, _ in after_b)
    if what == "remove":
        return a if present and item_id not in in_target else None
    if item_id not in in_target:
        return None
    index = in_target.index(item_id)
    if what == "insert":
        return None if present else {"insert": {**a["insert"], "index": index}}
    if [i for i, _ in after_b] == in_target:
        return None  # the other move won: nothing left to do
    return {"move": {"item_id": item_id, "to_index": index}}


def transform_against(op: Op, committed: Sequence[Op], base: Items) -> tuple[Op, Items]:
    """``op`` (made on ``base``) past every op of ``committed`` in order; also the list
    after ``committed``."""
    state = list(base)
    for other in committed:
        op = transform(op, other, state)
        state = apply(state, other)
    return op, state
