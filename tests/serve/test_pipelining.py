"""Pipelining: a socket's requests run together, in order per entity, up to RTHUB_MAX_IN_FLIGHT.

A room is made slow for real by holding a lock on the entity log in PostgreSQL: its durable
sends wait at the commit, exactly as they would behind a slow disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.serve.client import Client, scrape

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


@contextlib.asynccontextmanager
async def log_locked(hub) -> AsyncIterator[asyncpg.Connection]:
    """Hold the entity log so no durable write commits until the block ends."""
    conn = await asyncpg.connect(hub.settings.postgres_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE entity_log IN EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def until_writes_wait(conn: asyncpg.Connection) -> None:
    """Until a write to the entity log waits for the lock (polled: it is in PostgreSQL). The
    query column may still show the connection's previous statement while a new one is
    parsed, so any backend of this database waiting on a lock counts."""
    async with asyncio.timeout(15):
        while not await conn.fetchval(  # noqa: ASYNC110 (state in PostgreSQL: polled)
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"):
            await asyncio.sleep(0.02)


async def replies(client: Client, ids: list[Any], within: float = 20) -> list[dict[str, Any]]:
    """The replies to ``ids`` in the order they arrived."""
    wanted, got = set(ids), []
    async with asyncio.timeout(within):
        for frame in list(client.inbox):
            if frame.get("ref") in wanted:
                client.inbox.remove(frame)
                got.append(frame)
        while len(got) < len(wanted):
            frame = await client.recv(within)
            (got if frame.get("ref") in wanted else client.inbox).append(frame)
    return got


async def test_pipelined_sends_are_handled_in_order_per_room(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    assert alice.welcome["content"]["max_in_flight"] == hub.settings.max_in_flight
    for room in ("pipe-a", "pipe-b"):
        await alice.ask("room.create", {"room_id": room, "name": room})
    sent: dict[Any, tuple[str, int]] = {}
    for i in range(120):  # sent back to back: no reply awaited
        room = "pipe-a" if i % 3 else "pipe-b"
        frame_id = await alice.send("chat.send", {"room": room, "text": str(i),
                                                  "client_msg_id": f"c{i}"})
        sent[frame_id] = (room, i)
    answers = await replies(alice, list(sent))
    assert [a for a in answers if a["type"] != "ack"] == []
    for room in ("pipe-a", "pipe-b"):
        by_seq = sorted((a["content"]["seq"], sent[a["ref"]][1]) for a in answers
                        if sent[a["ref"]][0] == room)
        order = [i for _, i in by_seq]
        assert order == sorted(order)  # the room stored them in the order sent
        texts = [(await alice.expect("chat.message", topic=f"room:{room}"))["content"]["text"]
                 for _ in by_seq]
        assert texts == [str(i) for i in order]
    await alice.close()


async def test_a_slow_room_does_not_hold_up_another_ones_replies(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    await alice.ask("room.create", {"room_id": "slow", "name": "slow"})
    await alice.ask("room.create", {"room_id": "fast", "name": "fast"})
    async with log_locked(hub) as pg:
        slow = await alice.send("chat.send", {"room": "slow", "text": "waits",
                                              "client_msg_id": "w"})
        await until_writes_wait(pg)
        listed = await alice.send("presence.list", {"topic": "room:fast"})
        pong = await alice.send("time.ping", {"t0": 1})
        first = await replies(alice, [listed, pong])
        assert {f["type"] for f in first} == {"ack", "time.pong"}
        assert all(f.get("ref") != slow for f in alice.inbox)  # still at the commit
    [stored] = await replies(alice, [slow])
    assert stored["type"] == "ack"
    assert stored["content"]["seq"] >= 1
    await alice.close()


async def test_past_max_in_flight_the_socket_is_not_read_until_replies_go_out(deploy):
    _, hub = await deploy(RTHUB_MAX_IN_FLIGHT="4")
    alice = await Client.connect(hub.url, hub.token("alice"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    await alice.ask("room.create", {"room_id": "busy", "name": "busy"})
    async with log_locked(hub) as pg:
        sends = [await alice.send("chat.send", {"room": "busy", "text": str(i),
                                                "client_msg_id": str(i)}) for i in range(4)]
        await until_writes_wait(pg)
        async with asyncio.timeout(15):
            while (await scrape(hub.operator)).get("rthub_sockets_paused") != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert (await scrape(hub.operator))["rthub_requests_in_flight"] == 4
        ping = await alice.send("time.ping", {"t0": 1})  # not read while four wait
        other = await bob.send("time.ping", {"t0": 2})  # another socket is served meanwhile
        [answer] = await replies(bob, [other])
        assert answer["type"] == "time.pong"
    arrived = await replies(alice, [*sends, ping])
    # reading resumes once half the bound is answered: the ping comes after two acks at least
    assert [f["type"] for f in arrived].index("time.pong") >= 2
    assert [f["content"]["seq"] for f in arrived if f["type"] == "ack"] == [1, 2, 3, 4]
    metrics = await scrape(hub.operator)
    assert metrics["rthub_sockets_paused"] == 0
    assert metrics["rthub_requests_in_flight"] == 0
    await alice.close()
    await bob.close()
