"""The outbox on a real Ray, PostgreSQL and redis-server: a host killed between a commit and
its publish leaves no hole in the topic's stream. The host reaches Redis through a cut-able
proxy (``tests.netcut``), so its publishes fail while the commits go on; then it is killed,
and the events come out of its outbox on the entity's next activation, or by the sweep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import ray
import redis.asyncio as aioredis

from actors.client import ActorSystem
from fanout.exports import family_key
from fanout.localcluster import LocalCluster, redis_server
from fanout.streams import stream_key
from rthub.event_catalog import parse
from tests.actors.test_runtime import restarted, stats, until
from tests.netcut import NetCut

SERVER, WHY_NOT = redis_server(minimum=6)
pytestmark = [pytest.mark.skipif(SERVER is None, reason=WHY_NOT), pytest.mark.one_backend]


@pytest.fixture
def server(tmp_path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, cluster=False) as owned:
        yield owned


@pytest.fixture
async def redis(server: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def cut(server: LocalCluster) -> AsyncIterator[NetCut]:
    proxy = await NetCut(server.ports[0]).start()
    yield proxy
    await proxy.close()


async def stream_seqs(redis: aioredis.Redis, tenant: str, topic: str) -> list[int]:
    return [int(i.split(b"-")[0]) for i, _ in await redis.xrange(stream_key(tenant, topic))]


async def outbox_empty(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM stream_outbox") == 0


async def unpublished_then_killed(system: ActorSystem, cut: NetCut, redis: aioredis.Redis,
                                  db, poll: str) -> None:
    """Votes 1-3 published; votes 4-6 committed while Redis is cut off; the host killed."""
    tenant = "default"
    ref = system.ref("poll", poll)
    await ref.ask("poll.create", {"user": "u0", "question": "next?", "options": ["a", "b"]})
    for n in range(1, 4):
        await ref.ask("poll.vote", {"user": f"u{n}", "option": 0})

    async def published() -> bool:
        return await stream_seqs(redis, tenant, f"poll:{poll}") == [1, 2, 3]

    await until(published, "votes 1-3 in the stream")
    await until(lambda: outbox_empty(db), "their outbox rows deleted")
    await cut.cut()
    for n in range(4, 7):  # acknowledged: durable, with their stream events in the outbox
        await ref.ask("poll.vote", {"user": f"u{n}", "option": 1})
    assert await db.fetchval("SELECT array_agg(seq ORDER BY seq) FROM stream_outbox") == [
        4, 5, 6]
    for key_id, content in await db.fetch("SELECT key_id, content FROM stream_outbox"):
        assert key_id == "test1"  # sealed (events may carry chat text): tests.conftest's key
        assert b"counts" not in content
    host = system.host("rthub-host-0")
    pid = (await host.stats.remote())["pid"]
    ray.kill(host, no_restart=False)  # the publisher's queue dies with it
    await restarted(system, "rthub-host-0", pid)
    await cut.restore()


async def test_the_next_activation_publishes_what_a_killed_host_committed_first(
        make_system, cut, redis, db) -> None:
    system = make_system(RTHUB_HOSTS="1", REDIS_URL=cut.url, RTHUB_OUTBOX_SWEEP_S="3600")
    poll = f"p{uuid.uuid4().hex[:6]}"
    await unpublished_then_killed(system, cut, redis, db, poll)
    tenant = "default"
    assert await stream_seqs(redis, tenant, f"poll:{poll}") == [1, 2, 3]  # the hole
    await system.ref("poll", poll).ask("poll.vote", {"user": "u7", "option": 0})

    async def complete() -> bool:
        return await stream_seqs(redis, tenant, f"poll:{poll}") == list(range(1, 8))

    await until(complete, "the stream to be whole, in order")
    assert (await stats(system, "rthub-host-0"))["republished"] == 3
    await until(lambda: outbox_empty(db), "the outbox to be emptied once Redis has them")


async def test_the_sweep_publishes_it_without_a_message(make_system, cut, redis, db) -> None:
    system = make_system(RTHUB_HOSTS="1", REDIS_URL=cut.url, RTHUB_OUTBOX_SWEEP_S="0.5")
    poll = f"p{uuid.uuid4().hex[:6]}"
    await unpublished_then_killed(system, cut, redis, db, poll)
    tenant = "default"

    async def complete() -> bool:
        return await stream_seqs(redis, tenant, f"poll:{poll}") == list(range(1, 7))

    await until(complete, "the sweep to publish votes 4-6")
    counters = await stats(system, "rthub-host-0")
    assert counters["republished"] == 3
    assert counters["activations"] == 1


async def test_published_events_leave_the_outbox(make_system, db, embedded_redis) -> None:
    system = make_system(RTHUB_HOSTS="1", REDIS_URL=embedded_redis)
    ref = system.ref("poll", "kept")
    await ref.ask("poll.create", {"user": "u0", "question": "next?", "options": ["a", "b"]})
    await asyncio.gather(*(ref.ask("poll.vote", {"user": f"u{n}", "option": n % 2})
                           for n in range(50)))
    await until(lambda: outbox_empty(db), "every published event's row deleted")
    assert (await stats(system, "rthub-host-0"))["outbox_deleted"] == 50


async def test_family_events_of_a_killed_host_are_exported_once_in_order(
        make_system, cut, redis, db) -> None:
    """The family streams ride the outbox too: shares 4-6, committed while Redis was cut
    off and lost with the host's queue, reach ``collaboration`` after 1-3 and before 7."""
    system = make_system(RTHUB_HOSTS="1", REDIS_URL=cut.url, RTHUB_OUTBOX_SWEEP_S="3600")
    playlist = system.ref("playlist", f"l{uuid.uuid4().hex[:6]}")
    await playlist.ask("playlist.create", {"user": "olga", "name": "Road trip"})

    async def share(n: int) -> None:
        await playlist.ask("playlist.share", {"user": "olga", "target": f"u{n}",
                                              "role": "editor"})

    async def shared(*users: str) -> bool:
        exported = await redis.xrange(family_key("default", "collaboration"))
        return [parse(i, f).data["user"] for i, f in exported] == list(users)

    for n in range(1, 4):
        await share(n)
    await until(lambda: shared("u1", "u2", "u3"), "shares 1-3 exported")
    await cut.cut()
    for n in range(4, 7):
        await share(n)
    host = system.host("rthub-host-0")
    pid = (await host.stats.remote())["pid"]
    ray.kill(host, no_restart=False)
    await restarted(system, "rthub-host-0", pid)
    await cut.restore()
    await share(7)
    every = [f"u{n}" for n in range(1, 8)]
    await until(lambda: shared(*every), "every share exported once, in order")
    await until(lambda: outbox_empty(db), "the outbox emptied")
    assert await shared(*every)  # nothing after it either
