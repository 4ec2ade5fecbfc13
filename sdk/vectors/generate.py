"""Test vectors shared by the Python and JavaScript clients: cases computed by the Python
implementations (``rthub/playlist_ot.py``, ``client/clock.py``) that the JavaScript port
(``sdk/js/src/ot.js``, ``sdk/js/src/clock.js``) must answer alike.

``python -m sdk.vectors.generate`` rewrites ``playlist_ot.json``, ``clock.json`` and
``msgpack.json`` (``msgpack_cases.py``: bytes as the hub's msgpack writes them) beside
this file; ``--check`` says whether they still equal what the Python code computes now
(``tests/test_sdk_vectors.py`` runs it, so a change to the rules without regenerating fails).
Deterministic: a fixed seed, and the hand-written cases name the docstring's rule they cover.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

from client.clock import ClockEstimator
from rthub import playlist_ot as ot
from sdk.vectors.msgpack_cases import msgpack_vectors

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SEED = 20  # issue 20
RANDOM_OT_CASES = 160
BASE = [["a", "t-a"], ["b", "t-b"], ["c", "t-c"], ["d", "t-d"]]


def ins(index: int, item_id: str) -> dict[str, Any]:
    return {"insert": {"index": index, "track": f"t-{item_id}", "item_id": item_id}}


def rem(item_id: str) -> dict[str, Any]:
    return {"remove": {"item_id": item_id}}


def mov(item_id: str, to_index: int) -> dict[str, Any]:
    return {"move": {"item_id": item_id, "to_index": to_index}}


def reset(*ids: str) -> dict[str, Any]:
    return {"reset": {"items": [[i, f"t-{i}"] for i in ids]}}


# (rule from playlist_ot's docstring, a, b), all made on BASE
RULES: list[tuple[str, ot.Op, ot.Op]] = [
    ("inserts at one place are ordered by item_id", ins(1, "x"), ins(1, "y")),
    ("inserts at one place are ordered by item_id", ins(2, "z"), ins(2, "e")),
    ("inserts at one place are ordered by item_id (at the end)", ins(4, "q"), ins(9, "p")),
    ("remove vs remove of one item: one removal", rem("b"), rem("b")),
    ("move vs remove of one item: the remove wins", mov("b", 3), rem("b")),
    ("move vs remove of one item: the remove wins", rem("c"), mov("c", 0)),
    ("move vs move of one item: the lower index wins", mov("a", 3), mov("a", 1)),
    ("move vs move of one item: a tie lands in one place", mov("d", 0), mov("d", 0)),
    ("a target index is a gap between kept items", ins(2, "x"), mov("b", 3)),
    ("a target index is a gap between kept items", ins(1, "x"), rem("a")),
    ("a target index is a gap between kept items", mov("a", 2), mov("d", 1)),
    ("a target index is a gap between kept items", mov("c", 0), ins(0, "x")),
    ("an op on an item that is gone is a no-op", rem("nope"), ins(0, "x")),
    ("an op on an item that is gone is a no-op", mov("nope", 1), mov("a", 2)),
    ("reset vs anything: the reset wins", reset("d", "a"), ins(1, "x")),
    ("reset vs anything: the reset wins", mov("b", 0), reset("c")),
    ("two resets: the first in a fixed order wins", reset("b"), reset("a", "b")),
    ("no-op vs anything", None, mov("a", 3)),
    ("no-op vs no-op", None, None),
    ("indexes out of range are clamped", ins(-3, "x"), mov("b", 99)),
]


def random_op(rng: random.Random, ids: list[str], fresh: str) -> ot.Op:
    """An op of any kind on a list of ``ids`` (sometimes naming an item that is not there)."""
    roll = rng.random()
    pick = rng.choice([*ids, "ghost"]) if ids else "ghost"
    if roll < 0.35:
        return ins(rng.randint(-1, len(ids) + 1), rng.choice([fresh, fresh, "a", "n0"]))
    if roll < 0.6:
        return rem(pick)
    if roll < 0.92:
        return mov(pick, rng.randint(-1, len(ids) + 1))
    if roll < 0.97:
        return reset(*rng.sample(ids, k=min(len(ids), rng.randint(0, 3))))
    return None


def ot_case(rule: str, base: ot.Items, a: ot.Op, b: ot.Op) -> dict[str, Any]:
    """Everything both implementations must agree on for one pair of concurrent ops."""
    a_after_b, b_after_a = ot.transform(a, b, base), ot.transform(b, a, base)
    return {"rule": rule, "base": base, "a": a, "b": b,
            "transform_a_b": a_after_b, "transform_b_a": b_after_a,
            "merge": ot.merge(base, a, b),
            "apply_a": ot.apply(base, a), "apply_b": ot.apply(base, b),
            "apply_a_then_b": ot.apply(ot.apply(base, a), b_after_a),
            "apply_b_then_a": ot.apply(ot.apply(base, b), a_after_b)}


def playlist_vectors() -> dict[str, Any]:
    rng = random.Random(SEED)
    cases = [ot_case(rule, BASE, a, b) for rule, a, b in RULES]
    for n in range(RANDOM_OT_CASES):
        ids = [f"n{i}" for i in range(rng.randint(0, 6))]
        base = [[i, f"t-{i}"] for i in ids]
        cases.append(ot_case("random", base, random_op(rng, ids, f"x{n}"),
                             random_op(rng, ids, f"y{n}")))
    return {"about": "rthub/playlist_ot.py's answers; regenerate: python -m sdk.vectors.generate",
            "seed": SEED, "cases": json.loads(json.dumps(cases))}


def clock_vectors() -> dict[str, Any]:
    """Sample sequences (some past the 16-sample window) and the estimate after each."""
    rng = random.Random(SEED)
    runs = []
    for length in (1, 2, 3, 4, 5, 9, 20, 40):
        clock, steps, local = ClockEstimator(), [], 1_000_000.0
        true_offset = rng.uniform(-5000, 5000)
        for _ in range(length):
            up, down, work = rng.uniform(0.5, 80), rng.uniform(0.5, 80), rng.uniform(0, 3)
            t0 = round(local, 3)
            t1 = round(t0 + up + true_offset, 3)
            t2 = round(t1 + work, 3)
            t3 = round(t0 + up + work + down, 3)
            delay, offset = clock.add(t0, t1, t2, t3)
            steps.append({"t0": t0, "t1": t1, "t2": t2, "t3": t3, "delay": delay,
                          "offset": offset, "offset_ms": clock.offset_ms,
                          "error_bound_ms": clock.error_bound_ms,
                          "to_server_1e6": clock.to_server(1e6),
                          "to_local_1e6": clock.to_local(1e6)})
            local += rng.uniform(100, 2000)
        runs.append({"samples": steps})
    return {"about": "client/clock.py's answers; regenerate: python -m sdk.vectors.generate",
            "seed": SEED, "window": 16, "keep": 4, "runs": runs}


def render(vectors: dict[str, Any]) -> str:
    """JSON with one case (or run) per line: a regenerated file diffs case by case."""
    lines = []
    for key, value in sorted(vectors.items()):
        if isinstance(value, list):
            rows = ",\n".join(json.dumps(row, sort_keys=True) for row in value)
            lines.append(f"{json.dumps(key)}: [\n{rows}\n]")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


FILES = {"playlist_ot.json": playlist_vectors, "clock.json": clock_vectors,
         "msgpack.json": msgpack_vectors}


def stale() -> list[str]:
    """The committed files that differ from what the Python code computes now."""
    return [name for name, make in FILES.items()
            if not (HERE / name).is_file() or (HERE / name).read_text() != render(make())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        out_of_date = stale()
        for name in out_of_date:
            log.error("%s is out of date: run python -m sdk.vectors.generate", name)
        return 1 if out_of_date else 0
    for name, make in FILES.items():
        (HERE / name).write_text(render(make()))
        log.info("wrote %s", HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
