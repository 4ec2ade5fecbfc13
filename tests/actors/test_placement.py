"""Placement is a pure function of the key: same answer in every process, even spread."""

import json
import os
import subprocess
import sys
from collections import Counter

from actors.placement import host_name, jump_hash, key_digest

KEYS = [("default", "session", f"user-{i}") for i in range(2000)]


def test_placement_is_the_same_in_another_process_with_another_hash_seed():
    script = (
        "import json, sys; from actors.placement import host_name; "
        "keys = json.load(sys.stdin); "
        "json.dump([host_name(tuple(k), 7, frozenset()) for k in keys], sys.stdout)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(KEYS), env=env,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out) == [host_name(k, 7, frozenset()) for k in KEYS]


def test_entities_spread_evenly_over_hosts():
    counts = Counter(jump_hash(key_digest(k), 8) for k in KEYS)
    assert set(counts) == set(range(8))
    assert max(counts.values()) < 2 * min(counts.values())


def test_adding_a_host_moves_only_its_share_of_entities():
    before = [jump_hash(key_digest(k), 8) for k in KEYS]
    after = [jump_hash(key_digest(k), 9) for k in KEYS]
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert all(b == 8 for _, b in moved)  # every move is onto the new host
    assert len(moved) < len(KEYS) / 9 * 1.5


def test_a_pinned_entity_gets_a_host_of_its_own():
    key = ("default", "party", "concert")
    assert host_name(key, 4, frozenset({key})) == "rthub-pinned-default-party-concert"
    assert host_name(key, 4, frozenset()).startswith("rthub-host-")
