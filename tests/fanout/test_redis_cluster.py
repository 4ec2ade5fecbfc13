"""The fan-out on a real three-master Redis Cluster (``fanout.localcluster``): topics on every
node, sharded pub/sub, replay, a slot moved under a subscriber, a node restarted, and the hub
end to end with REDIS_URL naming the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from ray import serve as rayserve
from ray.serve.context import _get_global_client

from actors.client import ActorSystem
from client.events import EventConsumer
from cluster.ingress import free_port
from fanout import connect
from fanout.exports import Policy, family_key
from fanout.localcluster import LocalCluster, redis_server
from fanout.publisher import StreamPublisher
from fanout.streams import StreamEvent, channel, position, publish, stream_key
from fanout.subscriber import TopicHub
from notify.service import stop as stop_notifier
from rthub.errors import RateLimited
from rthub.event_catalog import parse
from serve.app import build
from serve.event_lag import sample
from serve.security.limits import RateLimiter
from tests.conftest import create_database
from tests.serve.client import Client
from tests.serve.conftest import Hub, app_settings, routed, urls

SERVER, WHY_NOT = redis_server(7)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if SERVER is None:
        pytest.skip(f"needs redis-server >= 7 for a Redis Cluster with sharded pub/sub: {WHY_NOT}")
    with LocalCluster(tmp_path_factory.mktemp("redis-cluster"), server=SERVER) as running:
        yield running


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[connect.Client]:
    made = await connect.aclient(cluster.url)
    yield made
    await made.aclose()


@dataclass(frozen=True)
class Out:
    """What an entity publishes (``fanout.publisher.Outbound``)."""

    topic: str
    type: str
    content: dict[str, Any]
    seq: int | None
    removes: str | None = None


class Inbox:
    """A listener that keeps what arrives and lets a test await a count."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events if "seq" in event]

    async def until(self, count: int, within: float = 10) -> list[int]:
        async with asyncio.timeout(within):
            while len(self.seqs) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.seqs


async def topics_on_each_node(client: Any, tenant: str) -> dict[str, str]:
    """One topic per master: {node name: topic}."""
    await client.initialize()
    found: dict[str, str] = {}
    for i in range(1000):
        node = client.get_node_from_key(channel(tenant, f"room:{i}")).name
        found.setdefault(node, f"room:{i}")
        if len(found) == len(client.get_primaries()):
            return found
    raise AssertionError("no topic found for some node")


def events(topic: str, seqs: range) -> list[Out]:
    return [Out(topic, "chat.message", {"n": seq}, seq) for seq in seqs]


async def test_the_probe_tells_a_cluster_from_a_single_redis(cluster, embedded_redis_url):
    made = [connect.client(cluster.url), await connect.aclient(cluster.url),
            connect.client(embedded_redis_url), await connect.aclient(embedded_redis_url)]
    assert [connect.is_cluster(c) for c in made] == [True, True, False, False]
    for c in made:
        await c.aclose()


async def test_topics_on_every_node_arrive_in_order_over_sharded_pubsub_and_replay(
        cluster, client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    topics = await topics_on_each_node(client, tenant)
    hub, publisher = TopicHub(cluster.url), StreamPublisher(cluster.url, 1000)
    inboxes = {topic: Inbox() for topic in topics.values()}
    try:
        for topic, inbox in inboxes.items():
            await hub.add(tenant, topic, inbox)
        assert hub.shards is not None
        assert {hub.shards.where(channel(tenant, t).encode()) for t in topics.values()} == \
            set(topics)  # one connection per node, each channel on its slot's owner
        for first in range(1, 31, 10):  # batches mixing the three nodes' topics
            publisher.publish(tenant, [e for topic in topics.values()
                                       for e in events(topic, range(first, first + 10))])
        for inbox in inboxes.values():
            assert await inbox.until(30) == list(range(1, 31))

        for node_name, topic in topics.items():
            name = channel(tenant, topic)
            owner = cluster.node(int(node_name.rsplit(":", 1)[1]))
            # a sharded subscriber on the owner, and no plain one anywhere
            assert owner.execute_command("PUBSUB", "SHARDNUMSUB", name)[1] == 1
            assert all(cluster.node(port).execute_command("PUBSUB", "NUMSUB", name)[1] == 0
                       for port in cluster.ports)
            owner.close()
            start = await position(client, tenant, topic, None, 3600)
            assert start.seq == 30
            replay = await position(client, tenant, topic, (start.epoch, 25), 3600)
            assert replay.recovered
            assert [e["seq"] for e in replay.missed] == [26, 27, 28, 29, 30]
    finally:
        await hub.close()


async def test_a_plain_subscriber_on_another_node_does_not_get_the_events(cluster, client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    topics = await topics_on_each_node(client, tenant)
    (owner_name, topic), (other_name, _) = list(topics.items())[:2]
    name = channel(tenant, topic)
    hub, publisher, inbox = TopicHub(cluster.url), StreamPublisher(cluster.url, 1000), Inbox()
    host, port = other_name.rsplit(":", 1)
    plain = aioredis.Redis(host=host, port=int(port)).pubsub()
    try:
        await hub.add(tenant, topic, inbox)
        await plain.subscribe(name)
        assert (await plain.get_message(timeout=5))["type"] == "subscribe"
        publisher.publish(tenant, events(topic, range(1, 4)))
        assert await inbox.until(3) == [1, 2, 3]
        # a plain PUBLISH after them reaches every node over the cluster bus, in order from
        # the owner: it arriving first proves the events never crossed the bus
        owner = cluster.node(int(owner_name.rsplit(":", 1)[1]))
        owner.publish(name, b"marker")
        owner.close()
        message = await plain.get_message(timeout=5)
        assert message is not None
        assert message["data"] == b"marker"
    finally:
        await plain.aclose()
        await hub.close()


async def test_a_slot_moved_under_a_subscriber_is_followed_and_its_gap_read_back(
        cluster, client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    topics = await topics_on_each_node(client, tenant)
    (source, topic), (target, _) = list(topics.items())[:2]
    name = channel(tenant, topic).encode()
    hub, publisher, inbox = TopicHub(cluster.url), StreamPublisher(cluster.url, 1000), Inbox()
    try:
        await hub.add(tenant, topic, inbox)
        publisher.publish(tenant, events(topic, range(1, 6)))
        assert await inbox.until(5) == [1, 2, 3, 4, 5]
        # the loop is held (no await) while the slot moves and 6..8 are published on the new
        # owner: the hub hears of the move only afterwards, so those three are its gap
        target_port = int(target.rsplit(":", 1)[1])
        cluster.move_slot(client.keyslot(name), target_port)
        with contextlib.closing(cluster.node(target_port)) as owner:
            for out in events(topic, range(6, 9)):
                packed = StreamEvent(tenant, topic, out.seq, out.type, out.content,
                                     int(time.time() * 1000)).pack()
                owner.xadd(stream_key(tenant, topic), {"e": packed}, id=f"{out.seq}-1")
                owner.execute_command("SPUBLISH", name, packed)
        # the node drops the channel, the hub subscribes on the new owner and reads back
        # 6..8; the publisher's map is stale (MOVED, then it reads it again) for 9..10
        publisher.publish(tenant, events(topic, range(9, 11)))
        assert await inbox.until(10) == list(range(1, 11))  # no gap, no repeat
        assert hub.read_back >= 3
        assert hub.shards is not None
        assert hub.shards.where(name) == target
        assert hub.shards.moves >= 1
        assert publisher.failures >= 1  # it met the move
    finally:
        await hub.close()
        await asyncio.to_thread(cluster.move_slot, client.keyslot(name),
                                int(source.rsplit(":", 1)[1]))


async def test_a_restarted_node_is_subscribed_again_and_publishing_resumes(cluster, client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    topics = await topics_on_each_node(client, tenant)
    node_name, topic = next(iter(topics.items()))
    hub, publisher, inbox = TopicHub(cluster.url), StreamPublisher(cluster.url, 1000), Inbox()
    try:
        await hub.add(tenant, topic, inbox)
        publisher.publish(tenant, events(topic, range(1, 3)))
        assert await inbox.until(2) == [1, 2]
        await asyncio.to_thread(cluster.restart_node, int(node_name.rsplit(":", 1)[1]))
        publisher.publish(tenant, events(topic, range(3, 6)))  # retried until it is back
        assert await inbox.until(5, within=20) == [1, 2, 3, 4, 5]
    finally:
        await hub.close()


# -- end to end: the hub with REDIS_URL naming the cluster ---------------------------------------

@pytest.fixture(scope="module")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from fanout.embedded import EmbeddedRedis

    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("single-redis")))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def serve_http(ray_session: None) -> Iterator[int]:
    """Serve's HTTP port: the running Serve's (tests/serve starts one per session), else one
    started, and stopped, here."""
    running = _get_global_client(raise_if_no_controller_running=False)
    if running is None:
        rayserve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = _get_global_client().http_config.port
    yield port
    if running is None:
        rayserve.shutdown()


@pytest.fixture(scope="module")
async def cluster_hub(cluster: LocalCluster, serve_http: int, embedded_pg: str,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """A two-replica gateway app whose REDIS_URL is the cluster; one user may hold one socket."""
    # rate limits on (the test default): their buckets live on the cluster too
    settings = app_settings(await create_database(embedded_pg), cluster.url,
                            RTHUB_GATEWAY_REPLICAS="2", MAX_WS_CONNECTIONS_PER_USER="1",
                            RTHUB_DATA_DIR=str(tmp_path_factory.mktemp("cluster-hub")))
    system = ActorSystem(settings)
    system.start()
    name = f"gw-cluster-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(rayserve.run, build(settings), name=name, route_prefix=f"/{name}")
    url, http = urls(serve_http, name, settings)
    operator = await routed(http, settings)
    yield Hub(url, http, operator, settings, system, f"t{uuid.uuid4().hex[:8]}", app_name=name)
    await asyncio.to_thread(rayserve.delete, name)
    system.shutdown_hosts()
    stop_notifier(settings)


async def test_the_hub_on_a_cluster_delivers_resumes_and_evicts_across_replicas(cluster_hub):
    hub = cluster_hub
    alice = await Client.connect(hub.url, hub.token("alice"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    await alice.ask("room.create", {"room_id": "lobby", "name": "Lobby"})
    await bob.ask("room.join", {"room": "lobby"})
    sent = [(await alice.ask("chat.send", {"room": "lobby", "text": t, "client_msg_id": t}))
            ["seq"] for t in ("a", "b", "c")]
    got = [(await bob.expect("chat.message", topic="room:lobby"))["seq"] for _ in sent]
    assert got == sent
    # a late subscriber with ``since`` gets the replay from the cluster's stream
    carol = await Client.connect(hub.url, hub.token("carol"))
    await carol.ask("room.join", {"room": "lobby"})
    await carol.ask("unsubscribe", {"topic": "room:lobby"})
    epoch = (await alice.ask("subscribe", {"topic": "room:lobby"}))["epoch"]
    ack = await carol.ask("subscribe", {"topic": "room:lobby", "since": {"epoch": epoch,
                                                                          "seq": sent[0]}})
    assert ack["recovered"] is True
    replayed = [(await carol.expect("chat.message", topic="room:lobby", seq=seq))["seq"]
                for seq in sent[1:]]
    assert replayed == sent[1:]
    for client in (alice, bob, carol):
        await client.close()

    # one socket per user: a new one evicts the old, through the control channel (plain
    # pub/sub on the cluster) when the old is on the other replica
    old = await Client.connect(hub.url, hub.token("dave"))
    crossed = 0
    deadline = time.monotonic() + 20
    while crossed == 0 and time.monotonic() < deadline:
        new = await Client.connect(hub.url, hub.token("dave"))
        closed = await old.closed_with(within=10)
        assert closed == 4409
        crossed += new.welcome["content"]["gateway"] != old.welcome["content"]["gateway"]
        old = new
    assert crossed, "every new socket landed on the old one's replica"
    with contextlib.suppress(Exception):
        await old.close()


async def test_rate_limit_buckets_on_every_node_spend_exactly_their_burst(cluster):
    """The limiter's scripts cannot ride a cluster pipeline: concurrent calls instead, each
    bucket on its own slot, and the burst still exact under concurrency."""
    client = await connect.aclient(cluster.url)
    limiter = RateLimiter(client, [("user", "*", 0.001, 5.0)],
                          prefix=f"test:rl:{uuid.uuid4().hex[:6]}", check_timeout_s=30.0)
    users = [f"u{i}" for i in range(12)]  # their buckets spread over the three nodes
    outcomes = await asyncio.gather(*(limiter.check("chat.send", "t", user, None)
                                      for user in users for _ in range(8)),
                                    return_exceptions=True)
    assert sum(o is None for o in outcomes) == 5 * len(users)
    assert all(isinstance(o, RateLimited) for o in outcomes if o is not None)
    assert limiter.errors == 0
    await client.aclose()


async def test_family_streams_on_every_node_are_exported_once_and_consumed(cluster, client):
    """Tenants' family streams hash to slots of their own, apart from the topics that make
    them: a batch goes to every node at once, a retry exports nothing twice, and a consumer
    group and the lag figures work against the cluster."""
    tenants = [f"t{uuid.uuid4().hex[:6]}" for _ in range(6)]
    events = [StreamEvent(tenant, f"room:r{n}", seq, "chat.read",
                          {"room": f"r{n}", "user": "u", "seq": seq}, 1)
              for tenant in tenants for n in range(3) for seq in range(1, 4)]
    await publish(client, events, 1000, Policy())
    await publish(client, events[::2], 1000, Policy())  # a retry of part of it
    nodes = {client.get_node_from_key(family_key(t, "chat")).name for t in tenants}
    assert len(nodes) > 1  # the test means something: the streams are spread
    for tenant in tenants:
        exported = [parse(i, f).id for i, f in
                    await client.xrange(family_key(tenant, "chat"))]
        assert exported == [f"room:r{n}#{seq}" for n in range(3) for seq in range(1, 4)]
    far = next(t for t in tenants  # on a node the URL does not name: a plain client is MOVED
               if client.get_node_from_key(family_key(t, "chat")).port != cluster.ports[0])
    async with EventConsumer(cluster.url, far, "chat", group="g", start="0") as g:
        got = []
        async for event in g:
            got.append(event.id)
            await g.ack(event)
            if len(got) == 9:
                break
    figures = {(s.tenant, s.family): s for s in await sample(client)}
    assert figures[(far, "chat")].groups[0].pending == 0
    assert figures[(tenants[1], "chat")].length == 9
