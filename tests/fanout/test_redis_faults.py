"""A gateway's subscriptions across Redis faults on a single server: the pub/sub connection
cut (a network fault, through ``tests.netcut``) or the server restarted. What was published
while the connection was down is read back from the topic's stream, in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from fanout.localcluster import LocalCluster, redis_server
from fanout.streams import StreamEvent, publish
from fanout.subscriber import TopicHub
from tests.fanout.test_redis_cluster import Inbox
from tests.netcut import NetCut

SERVER, WHY_NOT = redis_server(minimum=6)
pytestmark = pytest.mark.skipif(SERVER is None, reason=WHY_NOT)


@pytest.fixture
def server(tmp_path) -> Iterator[LocalCluster]:
    """A redis-server of the test's own (no persistence), so it can be restarted."""
    with LocalCluster(tmp_path, cluster=False) as owned:
        yield owned


@pytest.fixture
async def publisher(server: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(server.url)
    yield client
    await client.aclose()


def events(tenant: str, seqs: range) -> list[StreamEvent]:
    return [StreamEvent(tenant, "room:a", seq, "chat.message", {"n": seq}, 1) for seq in seqs]


async def test_events_published_while_the_subscriber_is_cut_off_are_read_back(
        server: LocalCluster, publisher: aioredis.Redis) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    cut = await NetCut(server.ports[0]).start()
    hub, inbox = TopicHub(cut.url), Inbox()
    try:
        await hub.add(tenant, "room:a", inbox)
        await publish(publisher, events(tenant, range(1, 4)), 1000)
        assert await inbox.until(3) == [1, 2, 3]
        await cut.cut()
        await publish(publisher, events(tenant, range(4, 11)), 1000)  # live copies lost
        await cut.restore()
        # the hub reconnects on its own; what it missed comes from the stream, then live
        assert await inbox.until(10, within=30) == list(range(1, 11))
        await publish(publisher, events(tenant, range(11, 13)), 1000)
        assert await inbox.until(12) == list(range(1, 13))
        assert hub.read_back == 7
        assert cut.connections >= 2
    finally:
        await hub.close()
        await cut.close()


async def test_a_restarted_server_is_subscribed_again(
        server: LocalCluster) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    hub, inbox = TopicHub(server.url), Inbox()
    try:
        await hub.add(tenant, "room:a", inbox)
        client = aioredis.from_url(server.url)
        await publish(client, events(tenant, range(1, 4)), 1000)
        assert await inbox.until(3) == [1, 2, 3]
        await client.aclose()
        server.restart_node(server.ports[0])  # its keys are gone: a new, empty stream
        client = aioredis.from_url(server.url)
        await publish(client, events(tenant, range(4, 7)), 1000)  # maybe before it is back
        await client.aclose()
        assert await inbox.until(6, within=30) == list(range(1, 7))
    finally:
        await hub.close()
