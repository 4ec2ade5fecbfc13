"""Admission control: under overload a request is refused at once (``unavailable`` with
``retry_after_ms``), nothing admitted is lost, and a flood does not take every slot.

The host is made slow for real: a lock on the entity log in PostgreSQL holds every durable
write at its commit (``tests.serve.test_pipelining.log_locked``). Admission control works on
the age of the oldest message a replica has waiting on a host, so the tests wait for that
age, read from the replica's own gauge, before they send what must be refused.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.serve.client import Client, metrics_text, scrape
from tests.serve.test_pipelining import log_locked, replies, until_writes_wait

# RTHUB_QUEUE_TARGET_MS: wide windows, so a busy machine cannot race them (the "behind, not
# yet twice the target" phase has TARGET_MS to send three frames and read their answers)
TARGET_MS = 5000


async def until_delay_over(hub, seconds: float) -> None:
    """Until the replica reports a host message older than ``seconds`` (a gauge: polled)."""
    async with asyncio.timeout(30):
        while (await scrape(hub.operator)).get(  # noqa: ASYNC110 (a gauge: polled)
                "rthub_host_queue_delay_seconds", 0) <= seconds:
            await asyncio.sleep(0.05)


async def send(client: Client, room: str, text: str) -> Any:
    return await client.send("chat.send", {"room": room, "text": text, "client_msg_id": text})


def shed_counts(text: str) -> dict[str, float]:
    counts = {}
    for line in text.splitlines():
        if line.startswith("rthub_requests_shed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


async def history_texts(client: Client, room: str) -> list[str]:
    content = await ask_admitted(client, "chat.history", {"room": room})
    return [m["text"] for m in content["messages"]]


async def test_behind_host_refuses_floods_then_everyone_and_loses_nothing(deploy):
    _, hub = await deploy(RTHUB_QUEUE_TARGET_MS=str(TARGET_MS), RTHUB_HOSTS="1")
    alice, bob, carol = [await Client.connect(hub.url, hub.token(u))
                         for u in ("alice", "bob", "carol")]
    for owner, room in ((alice, "held"), (bob, "other"), (bob, "third")):
        await owner.ask("room.create", {"room_id": room, "name": room})
    await carol.ask("room.join", {"room": "held"})
    async with log_locked(hub) as pg:
        first = await send(alice, "held", "a1")  # admitted, then held at the commit
        await until_writes_wait(pg)
        await until_delay_over(hub, TARGET_MS / 1000)
        # behind, not yet twice the target: one waiting message per room and per user
        again = await send(alice, "held", "a2")  # alice already has one waiting
        crowd = await send(carol, "held", "c1")  # so does the room
        fresh = await send(bob, "other", "b1")  # neither: admitted
        refused = await replies(alice, [again]) + await replies(carol, [crowd])
        for frame in refused:
            assert frame["type"] == "error"
            assert frame["content"]["code"] == "unavailable"
            assert frame["content"]["retry_after_ms"] >= TARGET_MS
        assert all(f.get("ref") != first for f in alice.inbox)  # answered while a1 is held
        await until_delay_over(hub, 2 * TARGET_MS / 1000)
        late = await send(bob, "third", "b2")  # twice the target: nobody
        [frame] = await replies(bob, [late])
        assert frame["content"]["code"] == "unavailable"
        pong = await send_ping(carol)
        assert pong["type"] == "time.pong"
        # following a topic is the socket's own, in several steps: never refused half-way
        follow = await carol.send("subscribe", {"topic": "user:carol"})
        [frame] = await replies(carol, [follow])
        assert frame["type"] == "ack"
    admitted = await replies(alice, [first]) + await replies(bob, [fresh])
    assert [f["type"] for f in admitted] == ["ack", "ack"]
    counts = shed_counts(await metrics_text(hub.operator))
    assert counts == {"fair_share": 2, "host_delay": 1}
    # what was refused never ran; a retry after the wait goes through
    assert await history_texts(alice, "held") == ["a1"]
    await alice.ask("chat.send", {"room": "held", "text": "a2", "client_msg_id": "a2"})
    assert await history_texts(alice, "held") == ["a1", "a2"]
    for client in (alice, bob, carol):
        await client.close()


async def ask_admitted(client: Client, frame_type: str, content: dict[str, Any]
                       ) -> dict[str, Any]:
    """``ask``, retried after ``retry_after_ms`` while refused, as PROTOCOL.md tells clients
    (with a one-event journal bound, another socket's session write can be in the way)."""
    while True:
        frame = await client.expect_ref(await client.send(frame_type, content))
        if frame["type"] == "ack":
            return frame["content"]
        assert frame["content"]["code"] == "unavailable", frame
        await asyncio.sleep(frame["content"]["retry_after_ms"] / 1000)


async def send_ping(client: Client) -> dict[str, Any]:
    ping = await client.send("time.ping", {"t0": 1})
    [frame] = await replies(client, [ping])
    return frame


async def test_host_refuses_client_messages_while_its_journal_is_behind(deploy):
    # the gateway never refuses here (a minute's target): the host's own bound does
    _, hub = await deploy(RTHUB_QUEUE_TARGET_MS="60000", RTHUB_JOURNAL_QUEUE_LIMIT="1",
                          RTHUB_HOSTS="1")
    alice = await Client.connect(hub.url, hub.token("alice"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    await ask_admitted(alice, "room.create", {"room_id": "held", "name": "held"})
    await ask_admitted(bob, "room.create", {"room_id": "other", "name": "other"})
    async with log_locked(hub) as pg:
        # an event waits for the commit: a1's, or (then a1 is refused too) a session's
        first = await send(alice, "held", "a1")
        await until_writes_wait(pg)
        refused = await send(bob, "other", "b1")
        [frame] = await replies(bob, [refused])
        assert frame["type"] == "error"
        assert frame["content"]["code"] == "unavailable"
        assert frame["content"]["retry_after_ms"] > 0
        assert "where" not in frame["content"]  # the bound's name stays inside the hub
    [stored] = await replies(alice, [first])
    assert stored["type"] == "ack" or stored["content"]["code"] == "unavailable"
    assert shed_counts(await metrics_text(hub.operator)).get("journal", 0) >= 1
    stats = await hub.system.host("rthub-host-0").stats.remote()
    assert stats["shed_journal"] >= 1
    assert await history_texts(bob, "other") == []  # the refused send never ran
    await ask_admitted(bob, "chat.send", {"room": "other", "text": "b1", "client_msg_id": "b1"})
    assert await history_texts(bob, "other") == ["b1"]
    await alice.close()
    await bob.close()


async def refusals(hub, sent: list[tuple[Client, Any]], got: dict[Any, dict[str, Any]]
                   ) -> dict[Any, dict[str, Any]]:
    """``got`` completed with the replies to ``sent`` (client, frame id) while every admitted
    one waits at the commit: polled until each request is either answered or counted in
    flight by the replica (a gauge), so none is still on its way."""
    async with asyncio.timeout(20):
        while True:
            for client, frame_id in sent:
                if frame_id not in got:
                    for frame in await replies_ready(client, [frame_id]):
                        got[frame_id] = frame
            in_flight = (await scrape(hub.operator))["rthub_requests_in_flight"]
            if len(got) + in_flight == len(sent):
                return got


async def replies_ready(client: Client, ids: list[Any]) -> list[dict[str, Any]]:
    """Replies to ``ids`` already received (waits at most 50 ms for more)."""
    try:
        return await replies(client, ids, within=0.05)
    except TimeoutError:
        found = [f for f in client.inbox if f.get("ref") in ids]
        for frame in found:
            client.inbox.remove(frame)
        return found


async def test_a_flood_keeps_its_share_of_a_full_queue_and_others_still_get_in(deploy):
    # the count bound alone (a minute's target): 6 messages may wait on the host, and past 3
    # only a room and a user with nothing waiting get in
    _, hub = await deploy(RTHUB_QUEUE_TARGET_MS="60000", RTHUB_HOST_QUEUE_LIMIT="10",
                          RTHUB_HOSTS="1")
    users = ["alice", "bob", "carol", *(f"u{i}" for i in range(12))]
    clients = {u: await Client.connect(hub.url, hub.token(u)) for u in users}
    for user, client in clients.items():
        await ask_admitted(client, "room.create", {"room_id": f"r-{user}", "name": user})
    alice = clients["alice"]
    answered: dict[Any, dict[str, Any]] = {}
    async with log_locked(hub) as pg:
        flood = [(alice, await send(alice, "r-alice", f"a{i}")) for i in range(8)]
        await until_writes_wait(pg)
        refused = dict(await refusals(hub, flood, answered))
        assert 1 <= len(refused) < len(flood)  # some of the flood waits, the rest is refused
        assert {f["content"]["code"] for f in refused.values()} == {"unavailable"}
        others = [(clients[u], await send(clients[u], f"r-{u}", u)) for u in ("bob", "carol")]
        assert await refusals(hub, flood + others, answered) == refused  # they get in
        sent, full = flood + others, None
        for user in users[3:]:  # until the queue is full: then nobody does
            sent.append((clients[user], await send(clients[user], f"r-{user}", user)))
            if len(await refusals(hub, sent, answered)) > len(refused):
                full = answered[sent[-1][1]]
                break
        assert full is not None
        assert full["content"]["code"] == "unavailable"
    for client, frame_id in flood + others:
        if frame_id not in refused:
            [frame] = await replies(client, [frame_id])
            assert frame["type"] == "ack"  # every admitted request is stored and acked
    counts = shed_counts(await metrics_text(hub.operator))
    assert counts == {"fair_share": len(refused), "host_queue": 1}
    for client in clients.values():
        await client.close()
