"""The analytics' counting and its per-minute buckets, against real Redis (no hub): two
replicas' flushes add up, a party's recommendations reaching both count once, and a quiet
minute reads as zeros."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from rthub.errors import Forbidden, Unavailable
from serve import admin, analytics_store
from serve.analytics import Analytics
from serve.auth import Identity
from serve.metrics import LATENCY_BOUNDS, GatewayMetrics


def a_minute() -> float:
    """A minute of a test's own (delivery latency is counted hub-wide, not per tenant), far
    from now: flushes and reads agree on it."""
    return 1_800_000_000.0 + 60 * (uuid.uuid4().int % 10**6)


def replica() -> tuple[Analytics, GatewayMetrics]:
    metrics = GatewayMetrics()
    return Analytics(metrics.analytics, metrics.delivery_latency.counts), metrics


def socket(tenant: str, user: str, *topics: str) -> Any:
    identity = Identity(user=user, tenant=tenant, scopes=frozenset(), name=user, expires_at=0)
    return SimpleNamespace(identity=identity, positions=dict.fromkeys(topics))


def frame(kind: str, **content: Any) -> dict[str, Any]:
    return {"type": kind, "content": content}


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does():
    bounds = (0.01, 0.1, 1.0)
    assert analytics_store.quantile([0, 0, 0, 0], bounds, 0.5) is None
    assert analytics_store.quantile([10, 0, 0, 0], bounds, 0.5) == 5.0  # ms, half of 10 ms
    assert analytics_store.quantile([0, 10, 0, 0], bounds, 0.99) == pytest.approx(99.1)
    assert analytics_store.quantile([0, 0, 0, 3], bounds, 0.5) == 1000.0  # past the last


async def test_two_replicas_flushes_add_up_and_shown_lists_count_once(redis_client):
    tenant, now = f"t{uuid.uuid4().hex[:8]}", a_minute()
    one, one_metrics = replica()
    two, two_metrics = replica()
    ana = socket(tenant, "ana", "room:lobby", "party:fri")
    bo = socket(tenant, "bo", "party:fri")
    for _ in range(3):
        one.handled(ana, frame("chat.send", room="lobby", text="hi"), {})
    two.handled(bo, frame("party.control", party="fri", action="skip"), {})
    two.error(tenant, "not_found")
    one_metrics.delivery_latency.observe(0.004)
    shown = {"type": "party.recommendations", "topic": "party:fri", "seq": 7,
             "content": {"tracks": ["x", "y"]}}
    one.arrived(shown)
    two.arrived(shown)  # the same event reaches both replicas
    two.handled(bo, frame("party.queue", party="fri", op="add", track="y"), {})
    one.ended(tenant, 12.5)

    recorded = []
    for name, core, sockets in (("gw-1", one, [ana]), ("gw-2", two, [bo])):
        batch, snapshot = core.take(sockets)
        recorded += await analytics_store.flush(redis_client, name, batch, snapshot, now=now)
    assert recorded == [("party", 2)]  # whichever replica came first; once

    data = await analytics_store.read(redis_client, tenant, 2, LATENCY_BOUNDS, now=now)
    quiet, minute = data["series"]
    assert quiet["messages"]["room"] == quiet["connections"] == quiet["skips"] == 0
    assert (minute["messages"], minute["skips"], minute["errors"]) == (
        {"room": 3, "party": 2, "playlist": 0}, 1, {"not_found": 1})
    assert (minute["connections"], minute["users"], data["distinct_users"]) == (2, 2, 2)
    assert (minute["sessions_closed"], minute["session_avg_s"]) == (1, 12.5)
    assert minute["recommendations"] == {
        "lists_shown": {"party": 1, "playlist": 0}, "tracks_shown": {"party": 2, "playlist": 0},
        "tracks_added": {"party": 1, "playlist": 0}}
    assert minute["latency_ms"]["count"] == 1
    assert 2 < minute["latency_ms"]["p50"] <= 5
    assert data["top"]["room"] == [{"id": "lobby", "messages": 3}]
    assert data["top"]["party"] == [{"id": "fri", "messages": 2, "active_users": 2}]
    assert two_metrics.analytics.skips.count == 1
    assert two_metrics.analytics.recommended_tracks_added.counts == {"party": 1}


async def test_a_failed_flush_keeps_its_counts_for_the_next(redis_client):
    tenant, now = f"t{uuid.uuid4().hex[:8]}", a_minute()
    core, metrics = replica()
    ana = socket(tenant, "ana", "room:lobby")
    core.handled(ana, frame("chat.send", room="lobby", text="hi"), {})
    metrics.delivery_latency.observe(0.02)
    batch, _ = core.take([ana])
    core.put_back(batch)  # as Control.flush_analytics does when Redis refuses
    core.handled(ana, frame("chat.send", room="lobby", text="again"), {})
    batch, snapshot = core.take([ana])
    await analytics_store.flush(redis_client, "gw-1", batch, snapshot, now=now)
    minute = (await analytics_store.read(redis_client, tenant, 1, LATENCY_BOUNDS,
                                         now=now))["series"][0]
    assert (minute["messages"]["room"], minute["latency_ms"]["count"]) == (2, 1)


def test_an_add_counts_as_recommended_only_for_a_follower_within_the_hour():
    core, metrics = replica()
    follower = socket("t", "ana", "playlist:mix")
    stranger = socket("t", "bo")
    core.handled(follower, frame("playlist.suggest", playlist="mix"),
                 {"tracks": [{"track": {"id": "a"}, "score": 1}], "model": "m"})
    insert = {"insert": {"index": 0, "track": "a", "item_id": "i"}}
    core.handled(stranger, frame("playlist.op", playlist="mix", op=insert), {})
    core.handled(follower, frame("playlist.op", playlist="mix", op={"insert": {
        **insert["insert"], "track": "other"}}), {})
    assert metrics.analytics.recommended_tracks_added.counts == {}
    core.handled(follower, frame("playlist.op", playlist="mix", op=insert), {})
    assert metrics.analytics.recommended_tracks_added.counts == {"playlist": 1}
    batch, _ = core.take([])
    assert [(t, kind, n) for t, _, kind, n in batch.shown] == [("t", "playlist", 1)]


async def test_the_endpoint_says_unavailable_when_redis_does_not_answer():
    class Away:
        def pipeline(self, transaction: bool = False) -> Any:
            raise ConnectionError("connection refused")

    core = SimpleNamespace(redis=Away())
    boss = Identity(user="boss", tenant="t", scopes=frozenset({"admin"}), name="boss",
                    expires_at=0)
    with pytest.raises(Unavailable, match="Redis"):
        await admin.analytics(core, boss, "5")  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await admin.analytics(core, socket("t", "ana").identity, "5")  # type: ignore[arg-type]
