"""Where an entity lives: a deterministic function of its key, the same in every process.

Jump consistent hash (Lamport & Veach, 2014) over a blake2b digest of the key: no lookup
service, no coordination, and growing the host count moves only ~1/n of the entities.
Python's ``hash()`` is salted per process, so it is never used here.
"""

from __future__ import annotations

import hashlib

from actors.context import EntityKey

_JUMP_MULTIPLIER = 2862933555777941757
_MASK64 = (1 << 64) - 1


def key_digest(key: EntityKey) -> int:
    """A 64-bit digest of (tenant, kind, id), stable across processes and machines."""
    raw = "\x1f".join(key).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def jump_hash(digest: int, buckets: int) -> int:
    """The bucket in ``range(buckets)`` for ``digest``."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    b, j = -1, 0
    while j < buckets:
        b = j
        digest = (digest * _JUMP_MULTIPLIER + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((digest >> 33) + 1)))
    return b


def host_name(key: EntityKey, hosts: int, pinned: frozenset[EntityKey]) -> str:
    """The Ray actor name of the host that runs ``key``."""
    if key in pinned:
        return "rthub-pinned-" + "-".join(key)
    return f"rthub-host-{jump_hash(key_digest(key), hosts)}"
