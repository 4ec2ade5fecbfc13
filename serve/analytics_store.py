"""The last hour of analytics in Redis: per-minute buckets every gateway replica adds to.

Every key of a tenant carries the tenant as its hash tag (one Redis Cluster slot, so a read
may span minutes in one command) and expires ``TTL_S`` after its last write:

* ``rthub:an:{t}:m:<minute>``: a hash of counters (``messages:<kind>``,
  ``errors:<code>``, ``sessions``, ``session_ms``, ``skips``, ``rec_added:<kind>``),
  ``HINCRBY`` from every replica;
* ``...:conns:<minute>``: a hash, replica -> its open sockets at its last flush that minute
  (summed on read: the tenant's concurrent connections);
* ``...:users:<minute>``: a HyperLogLog of users connected (distinct users, merged on read);
* ``...:top:<kind>:<minute>``: a sorted set, entity -> messages (``ZINCRBY``; kept to
  ``TOP_KEEP`` per minute);
* ``...:pu:<minute>:<party>``: a HyperLogLog of a party's listeners (active users);
* ``...:shown:<minute>``: a set naming each recommendation list shown, with its size (a
  party's list reaches every replica with a member in it: ``SADD`` counts it once);
* ``rthub:an-hub:lat:<minute>``: delivery latency bucket counts, hub-wide (an event's
  tenant is not known where its latency is measured).

A flush is one pipeline, every few seconds, never a write per frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from serve.analytics import Batch, Snapshot

TTL_S = 3700  # an hour of minutes, and a little
TOP_KEEP = 1000  # entities kept per tenant, kind and minute
TOP_N = 10
MAX_MINUTES = 60
KINDS = ("room", "party", "playlist")


def minute_of(seconds: float) -> int:
    return int(seconds // 60)


def _key(tenant: str, what: str, minute: int, extra: str = "") -> str:
    return f"rthub:an:{{{tenant}}}:{what}:{minute}{extra}"


def _latency_key(minute: int) -> str:
    return f"rthub:an-hub:lat:{minute}"


async def flush(redis: Any, gateway: str, batch: Batch, snapshot: Snapshot,
                now: float | None = None) -> list[tuple[str, int]]:
    """Add ``batch`` and ``snapshot`` to the current minute, in one pipeline; return the
    recommendation lists this call recorded first hub-wide, as (kind, tracks)."""
    minute = minute_of(time.time() if now is None else now)
    pipe = redis.pipeline(transaction=False)
    touched: list[str] = []

    def expire(key: str) -> None:
        touched.append(key)

    for tenant, counts in batch.fields.items():
        key = _key(tenant, "m", minute)
        for name, count in counts.items():
            pipe.hincrby(key, name, count)
        expire(key)
    for (tenant, kind), entities in batch.top.items():
        key = _key(tenant, f"top:{kind}", minute)
        for entity, count in entities.items():
            pipe.zincrby(key, count, entity)
        pipe.zremrangebyrank(key, 0, -TOP_KEEP - 1)
        expire(key)
    for tenant, users in snapshot.users.items():
        pipe.hset(_key(tenant, "conns", minute), gateway, snapshot.connections[tenant])
        pipe.pfadd(_key(tenant, "users", minute), *users)
        expire(_key(tenant, "conns", minute))
        expire(_key(tenant, "users", minute))
    for (tenant, party), users in snapshot.party_users.items():
        key = _key(tenant, "pu", minute, f":{party}")
        pipe.pfadd(key, *users)
        expire(key)
    if any(batch.latency):
        key = _latency_key(minute)
        for index, count in enumerate(batch.latency):
            if count:
                pipe.hincrby(key, str(index), count)
        expire(key)
    first = len(pipe)
    for tenant, member, kind, tracks in batch.shown:
        pipe.sadd(_key(tenant, "shown", minute), f"{kind}|{tracks}|{member}")
        expire(_key(tenant, "shown", minute))
    shown_at = range(first, first + len(batch.shown))
    for key in dict.fromkeys(touched):
        pipe.expire(key, TTL_S)
    if not len(pipe):
        return []
    results = await pipe.execute()
    return [(kind, tracks) for index, (_, _, kind, tracks) in zip(shown_at, batch.shown,
                                                                   strict=True)
            if results[index]]


async def read(redis: Any, tenant: str, minutes: int, bounds: Sequence[float],
               now: float | None = None) -> dict[str, Any]:
    """The tenant's last ``minutes`` minutes, oldest first, and its top entities."""
    last = minute_of(time.time() if now is None else now)
    span = range(last - minutes + 1, last + 1)
    pipe = redis.pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(_key(tenant, "m", minute))
        pipe.hgetall(_key(tenant, "conns", minute))
        pipe.pfcount(_key(tenant, "users", minute))
        pipe.smembers(_key(tenant, "shown", minute))
        pipe.hgetall(_latency_key(minute))
    per_minute = await pipe.execute()
    series = [_minute(minute, *per_minute[i * 5:i * 5 + 5], bounds=bounds)
              for i, minute in enumerate(span)]
    top = {}
    for kind in KINDS:
        keys = [_key(tenant, f"top:{kind}", minute) for minute in span]
        ranked = await redis.zunion(keys, withscores=True)
        ranked = sorted(ranked, key=lambda item: -item[1])[:TOP_N]
        top[kind] = [{"id": _text(entity), "messages": int(score)} for entity, score in ranked]
    for party in top["party"]:
        keys = [_key(tenant, "pu", minute, f":{party['id']}") for minute in span]
        party["active_users"] = await redis.pfcount(*keys)
    users = await redis.pfcount(*(_key(tenant, "users", minute) for minute in span))
    return {"series": series, "top": top, "distinct_users": users}


def _minute(minute: int, counts: dict, conns: dict, users: int, shown: set, latency: dict,
            bounds: Sequence[float]) -> dict[str, Any]:
    fields = {_text(k): int(v) for k, v in counts.items()}
    errors = {name[7:]: n for name, n in fields.items() if name.startswith("errors:")}
    sessions = fields.get("sessions", 0)
    lists, tracks = {"party": 0, "playlist": 0}, {"party": 0, "playlist": 0}
    for member in shown:
        kind, size, _ = _text(member).split("|", 2)
        if kind in lists:
            lists[kind] += 1
            tracks[kind] += int(size)
    buckets = [0] * (len(bounds) + 1)
    for index, count in latency.items():
        if int(index) < len(buckets):
            buckets[int(index)] = int(count)
    return {
        "minute_ms": minute * 60_000,
        "connections": sum(int(v) for v in conns.values()),
        "users": users,
        "messages": {kind: fields.get(f"messages:{kind}", 0) for kind in KINDS},
        "errors": errors,
        "sessions_closed": sessions,
        "session_avg_s": round(fields.get("session_ms", 0) / sessions / 1000, 3)
        if sessions else None,
        "skips": fields.get("skips", 0),
        "recommendations": {
            "lists_shown": lists, "tracks_shown": tracks,
            "tracks_added": {kind: fields.get(f"rec_added:{kind}", 0) for kind in lists}},
        "latency_ms": {"count": sum(buckets), "p50": quantile(buckets, bounds, 0.5),
                       "p99": quantile(buckets, bounds, 0.99)},
    }


def quantile(buckets: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of a histogram in ms, as Prometheus' ``histogram_quantile`` does
    it (linear within the bucket; past the last bound: the last bound)."""
    total = sum(buckets)
    if not total:
        return None
    rank, running = q * total, 0
    for index, count in enumerate(buckets):
        if running + count >= rank and count:
            if index >= len(bounds):
                return bounds[-1] * 1000
            low = bounds[index - 1] if index else 0.0
            return round((low + (bounds[index] - low) * (rank - running) / count) * 1000, 3)
        running += count
    return bounds[-1] * 1000


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
