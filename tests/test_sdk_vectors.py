"""The vectors the two SDKs share (sdk/vectors/) are what the Python code computes now: a
change to rthub/playlist_ot.py or client/clock.py without regenerating them fails here (and
the JavaScript port is held to the same files by sdk/js/test/vectors.test.js)."""

from __future__ import annotations

import json

from sdk.vectors import generate


def test_the_committed_vectors_equal_what_python_computes() -> None:
    assert generate.stale() == [], "run: python -m sdk.vectors.generate"


def test_every_vector_converges_both_ways() -> None:
    cases = json.loads((generate.HERE / "playlist_ot.json").read_text())["cases"]
    rules = {case["rule"] for case in cases}
    assert len(rules) > 10
    assert "random" in rules
    for case in cases:
        assert case["apply_a_then_b"] == case["apply_b_then_a"] == case["merge"], case
