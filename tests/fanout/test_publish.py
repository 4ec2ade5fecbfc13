"""The host's publish path against a real Redis (embedded, and the external one when set)."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from fanout.streams import StreamEvent, channel, publish, stream_key


@pytest.fixture
def client(redis_client: aioredis.Redis) -> aioredis.Redis:
    return redis_client


def events(tenant: str, topic: str, seqs: range) -> list[StreamEvent]:
    return [StreamEvent(tenant, topic, seq, "chat.message", {"text": str(seq)}, 1) for seq in seqs]


async def test_a_batch_is_kept_and_published_in_order_and_a_retry_is_not_kept_twice(client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    pubsub = client.pubsub()
    await pubsub.subscribe(channel(tenant, "room:a"))
    await pubsub.get_message(timeout=5)  # the subscribe confirmation
    await publish(client, events(tenant, "room:a", range(1, 4)), 1000)
    await publish(client, events(tenant, "room:a", range(2, 6)), 1000)  # 2 and 3 again
    kept = await client.xrange(stream_key(tenant, "room:a"))
    assert [int(entry_id.split(b"-")[0]) for entry_id, _ in kept] == [1, 2, 3, 4, 5]
    live = []
    async with asyncio.timeout(10):
        while len(live) < 7:
            message = await pubsub.get_message(timeout=5)
            if message and message["type"] == "message":
                live.append(msgpack.unpackb(message["data"])["seq"])
    assert live == [1, 2, 3, 2, 3, 4, 5]  # subscribers drop the repeats by seq
    await pubsub.aclose()


async def test_a_refused_command_fails_the_batch_and_the_connection_carries_on(client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await client.set(stream_key(tenant, "room:broken"), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await publish(client, [*events(tenant, "room:broken", range(1, 2)),
                               *events(tenant, "room:ok", range(1, 3))], 1000)
    await publish(client, events(tenant, "room:ok", range(3, 4)), 1000)
    kept = await client.xrange(stream_key(tenant, "room:ok"))
    assert [int(entry_id.split(b"-")[0]) for entry_id, _ in kept] == [1, 2, 3]
    assert await client.ping()
