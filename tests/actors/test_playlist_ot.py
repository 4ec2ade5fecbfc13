"""Playlist OT: TP1 and the documented conflict rules, as properties (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rthub.playlist_ot import (
    apply,
    merge,
    transform,
    transform_against,
    transform_by_merge,
)

BASE_IDS = tuple(f"i{n}" for n in range(7))
# Strategies are built once: one built per example (a ``one_of`` of ``builds`` over the base)
# cost Hypothesis far more to validate than the properties cost to check.
SOME_IDS = st.lists(st.sampled_from(BASE_IDS), unique=True, max_size=6)
OP_KINDS = st.sampled_from((None, "insert", "remove", "move", "reset"))


@st.composite
def bases(draw) -> list[tuple[str, str]]:
    return [(i, f"track-{i}") for i in draw(SOME_IDS)]


@st.composite
def ops(draw, base: list[tuple[str, str]], new_id: str):
    """None, or an insert, remove (also of an item that is gone), move or reset on ``base``."""
    size = len(base)
    kind = draw(OP_KINDS)
    if kind is None:
        return None
    if kind == "insert":
        index = draw(st.integers(0, size))
        return {"insert": {"index": index, "track": f"t-{new_id}", "item_id": new_id}}
    if kind == "reset":
        keep = draw(st.lists(st.sampled_from(tuple(base)), unique=True)) if base else []
        return {"reset": {"items": [list(p) for p in keep]}}
    item = draw(st.sampled_from((*(i for i, _ in base), "gone")))
    if kind == "remove":
        return {"remove": {"item_id": item}}
    return {"move": {"item_id": item, "to_index": draw(st.integers(0, max(size - 1, 0)))}}


@st.composite
def cases(draw):
    base = draw(bases())
    return base, draw(ops(base, "new-a")), draw(ops(base, "new-b"))


@settings(max_examples=1500, deadline=None)
@given(cases())
def test_tp1_both_orders_reach_the_same_list(case):
    base, a, b = case
    left = apply(apply(base, a), transform(b, a, base))
    right = apply(apply(base, b), transform(a, b, base))
    assert left == right == merge(base, a, b)


@settings(max_examples=3000, deadline=None)
@given(cases())
def test_the_fast_transform_does_what_the_merge_says(case):
    """Index arithmetic (what runs) against the merged list (the specification)."""
    base, a, b = case
    after_b = apply(base, b)
    assert apply(after_b, transform(a, b, base)) == apply(after_b, transform_by_merge(a, b, base))


@settings(max_examples=300, deadline=None)
@given(cases())
def test_an_op_alone_merges_to_itself(case):
    base, a, _ = case
    assert merge(base, a, None) == apply(base, a)
    assert apply(base, transform(a, None, base)) == apply(base, a)


@settings(max_examples=300, deadline=None)
@given(bases(), st.data())
def test_transforming_past_a_sequence_converges(base, data):
    """A client op made on version v, transformed past three committed ops, ends where the
    committed ops transformed past it end (the server and the client agree)."""
    committed = [data.draw(ops(base, f"new-c{n}")) for n in range(3)]
    mine = data.draw(ops(base, "new-mine"))
    server_op, server_state = transform_against(mine, committed, base)
    server_list = apply(server_state, server_op)
    client_state, op = list(base), mine
    client_list = apply(base, mine)
    for other in committed:  # what the client does with each op the server broadcasts
        other_for_client = transform(other, op, client_state)
        op = transform(op, other, client_state)
        client_state = apply(client_state, other)
        client_list = apply(client_list, other_for_client)
    assert client_list == server_list


BASE = [("a", "A"), ("b", "B"), ("c", "C")]


def ids(items):
    return [i for i, _ in items]


def test_concurrent_inserts_at_one_index_are_ordered_by_item_id():
    x = {"insert": {"index": 1, "track": "X", "item_id": "x"}}
    w = {"insert": {"index": 1, "track": "W", "item_id": "w"}}
    assert ids(merge(BASE, x, w)) == ["a", "w", "x", "b", "c"]


def test_a_remove_beats_a_concurrent_move_of_the_same_item():
    move = {"move": {"item_id": "b", "to_index": 0}}
    remove = {"remove": {"item_id": "b"}}
    assert transform(move, remove, BASE) is None
    assert ids(apply(apply(BASE, move), transform(remove, move, BASE))) == ["a", "c"]


def test_two_removes_of_one_item_remove_it_once():
    remove = {"remove": {"item_id": "b"}}
    assert transform(remove, remove, BASE) is None


def test_of_two_moves_of_one_item_the_lower_target_wins():
    first = {"move": {"item_id": "c", "to_index": 0}}
    second = {"move": {"item_id": "c", "to_index": 1}}
    assert ids(merge(BASE, first, second)) == ["c", "a", "b"]
    assert transform(second, first, BASE) is None


def test_an_op_on_an_item_that_no_longer_exists_is_a_no_op():
    assert transform({"move": {"item_id": "zz", "to_index": 0}}, None, BASE) is None
    assert apply(BASE, {"move": {"item_id": "zz", "to_index": 0}}) == BASE
    assert apply(BASE, {"remove": {"item_id": "zz"}}) == BASE


def test_a_revert_wins_over_anything_concurrent():
    reset = {"reset": {"items": [["a", "A"]]}}
    insert = {"insert": {"index": 0, "track": "X", "item_id": "x"}}
    assert transform(insert, reset, BASE) is None
    assert ids(apply(apply(BASE, insert), transform(reset, insert, BASE))) == ["a"]


def test_a_move_counts_its_target_index_after_taking_the_item_out():
    """json0's list move: ``to_index`` is a position in the list without the moved item."""
    four = [*BASE, ("d", "D")]
    assert ids(apply(four, {"move": {"item_id": "a", "to_index": 2}})) == ["b", "c", "a", "d"]
    assert ids(apply(four, {"move": {"item_id": "a", "to_index": 3}})) == ["b", "c", "d", "a"]
    assert ids(apply(four, {"move": {"item_id": "d", "to_index": 1}})) == ["a", "d", "b", "c"]
    assert ids(apply(four, {"move": {"item_id": "b", "to_index": 1}})) == ids(four)  # stays
    # and a concurrent insert before the target shifts it by one, as in json0
    insert = {"insert": {"index": 0, "track": "X", "item_id": "x"}}
    moved = transform({"move": {"item_id": "a", "to_index": 2}}, insert, four)
    assert moved == {"move": {"item_id": "a", "to_index": 3}}
    assert ids(apply(apply(four, insert), moved)) == ["x", "b", "c", "a", "d"]
