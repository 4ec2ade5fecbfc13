"""The consumer-lag figures of the family streams (real Redis, embedded 6.2 and external 7)."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, generate_latest

from fanout.exports import Policy, family_key
from fanout.streams import StreamEvent, publish
from serve.event_lag import EventLag, sample


def reads(tenant: str, seqs: range) -> list[StreamEvent]:
    return [StreamEvent(tenant, "room:r", seq, "chat.read", {"room": "r", "user": "u",
                                                           "seq": seq}, 1) for seq in seqs]


async def test_a_slow_group_shows_its_lag_and_one_left_behind_the_trim_is_flagged(
        redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    key = family_key(tenant, "chat")
    policy = Policy(maxlen=100, max_age_s=0)
    await publish(redis_client, reads(tenant, range(1, 11)), 1000, policy)
    for group in ("fast", "slow"):
        await redis_client.xgroup_create(key, group, id="0")
    await redis_client.xreadgroup("slow", "c", {key: ">"}, count=4)  # 4 handed, none acked
    handed = await redis_client.xreadgroup("fast", "c", {key: ">"})
    await redis_client.xack(key, "fast", *(i for i, _ in handed[0][1]))
    fifth = handed[0][1][4][0]
    a_minute_later = int(fifth.split(b"-")[0]) + 60_000
    # scoped to the tenant: a shared Redis may hold more than MAX_STREAMS other streams
    [stream] = await sample(redis_client, a_minute_later, tenant=tenant)
    fast, slow = stream.groups if stream.groups[0].name == "fast" else stream.groups[::-1]
    assert (stream.family, stream.length) == ("chat", 10)
    assert (fast.pending, fast.lag_s, slow.pending, slow.lag_s) == (0, 0.0, 4, 60.0)
    assert (fast.behind_retention, slow.behind_retention) == (False, False)
    if fast.lag is not None:  # Redis 7 counts entries too
        assert (fast.lag, slow.lag) == (0, 6)

    await publish(redis_client, reads(tenant, range(11, 511)), 1000, policy)  # trimmed
    await redis_client.xreadgroup("fast", "c", {key: ">"}, count=1000)  # fast keeps up
    [stream] = await sample(redis_client, tenant=tenant)
    fast, slow = stream.groups if stream.groups[0].name == "fast" else stream.groups[::-1]
    assert stream.length <= 200  # the hub trimmed whatever the groups had read
    assert (fast.behind_retention, slow.behind_retention) == (False, True)


async def test_the_figures_are_gauges_per_tenant_family_and_group(redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await publish(redis_client, reads(tenant, range(1, 4)), 1000, Policy())
    await redis_client.xgroup_create(family_key(tenant, "chat"), "mod", id="0")
    registry = CollectorRegistry()
    figures = EventLag(registry)
    await figures.refresh(redis_client)
    text = generate_latest(registry).decode()
    assert f'rthub_events_stream_length{{family="chat",tenant="{tenant}"}} 3.0' in text
    assert (f'rthub_events_consumer_pending{{family="chat",group="mod",tenant="{tenant}"}} 0.0'
            in text)
    assert f'rthub_events_consumer_lag_seconds{{family="chat",group="mod",tenant="{tenant}"}}' \
        in text
