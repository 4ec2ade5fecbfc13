"""Topic streams end to end: resume without loss, recovery limits, replicas, killed hosts."""

import asyncio

import pytest
import ray
import websockets
from ray import serve as rayserve

from rthub.errors import Unavailable
from serve.app import build
from tests.serve.client import Client


async def room_with(hub, room: str, *users: str) -> list[Client]:
    """Connected clients, the first the room's owner, all members following room:<room>."""
    clients = [await Client.connect(hub.url, hub.token(u)) for u in users]
    await clients[0].ask("room.create", {"room_id": room, "name": room})
    for client in clients[1:]:
        await client.ask("room.join", {"room": room})
    return clients


async def say(client: Client, room: str, *texts: str) -> list[int]:
    return [(await client.ask("chat.send", {"room": room, "text": t, "client_msg_id": t}))["seq"]
            for t in texts]


async def seqs(client: Client, room: str, count: int, after: int = 0) -> list[int]:
    """The next ``count`` new seqs, dropping repeats (``seq <= last seen``) as PROTOCOL.md
    tells clients to."""
    seen: list[int] = []
    while len(seen) < count:
        seq = (await client.expect("chat.message", topic=f"room:{room}"))["seq"]
        if seq > (seen[-1] if seen else after):
            seen.append(seq)
    return seen


async def test_a_client_drops_and_resumes_with_no_gap_and_no_duplicate(hub):
    alice, bob = await room_with(hub, "r", "alice", "bob")
    sent = await say(bob, "r", "a", "b", "c")
    assert await seqs(alice, "r", 3) == sent
    token = alice.welcome["content"]["resume_token"]
    await alice.close()
    missed = await say(bob, "r", "d", "e", "f")
    back = await Client.connect(hub.url, hub.token("alice"), query=f"?resume={token}")
    assert back.welcome["content"]["resumed"] is True
    restored = await back.expect("subscribed", topic="room:r")
    assert restored["content"]["recovered"] is True
    live = await say(bob, "r", "g")
    assert await seqs(back, "r", 4, after=sent[-1]) == missed + live  # the gap, then live
    assert missed + live == list(range(sent[-1] + 1, sent[-1] + 5))  # no hole
    assert back.welcome["content"]["resume_token"] != token
    await back.close()
    await bob.close()


async def test_a_resume_racing_the_old_sockets_close_still_recovers(hub):
    alice, bob = await room_with(hub, "race", "alice", "bob")
    sent = await say(bob, "race", "a")
    assert await seqs(alice, "race", 1) == sent
    token = alice.welcome["content"]["resume_token"]
    # the old socket stays open: the new gateway must close it and take its place
    back = await Client.connect(hub.url, hub.token("alice"), query=f"?resume={token}")
    assert await alice.closed_with() == 4409
    assert (await back.expect("subscribed", topic="room:race"))["content"]["recovered"] is True
    live = await say(bob, "race", "b")
    assert await seqs(back, "race", 1, after=sent[-1]) == live
    await back.close()
    await bob.close()


async def test_a_socket_whose_gateway_died_with_it_is_resumed(hub):
    """Its gateway (here one that stopped saying it is alive: a killed replica, a lost
    node) never records the socket's end; the resuming gateway records it instead, and the
    topics come back unrecovered (their positions died with the socket)."""
    alice, bob = await room_with(hub, "lost", "alice", "bob")
    session = hub.system.ref("session", "alice", hub.tenant)
    ghost = await session.ask("session.connect", {"connection_id": "ghost-conn",
                                                  "gateway": "gw-that-died"})
    await session.ask("session.follow", {"connection_id": "ghost-conn", "topic": "room:lost"})
    await say(bob, "lost", "while it was gone")
    back = await Client.connect(hub.url, hub.token("alice"),
                                query=f"?resume={ghost['resume_token']}")
    assert back.welcome["content"]["resumed"] is True
    restored = await back.expect("subscribed", topic="room:lost")
    assert restored["content"]["recovered"] is False  # reload: chat.history has it all
    live = await say(bob, "lost", "after")
    assert await seqs(back, "lost", 1, after=live[0] - 1) == live
    for client in (alice, back, bob):
        await client.close()


async def test_a_spent_resume_token_is_closed_4403_before_any_welcome(hub):
    """The JWT is checked before the upgrade; the resume token is the session's to judge,
    so a spent one closes the new socket (4403) before a welcome or anything else."""
    alice = await Client.connect(hub.url, hub.token("alice"))
    token = alice.welcome["content"]["resume_token"]
    await alice.close()
    back = await Client.connect(hub.url, hub.token("alice"), query=f"?resume={token}")
    await back.close()
    headers = {"Authorization": f"Bearer {hub.token('alice')}"}
    async with websockets.connect(f"{hub.url}?resume={token}", additional_headers=headers,
                                  open_timeout=20) as spent:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(spent.recv(), 15)
    assert closed.value.rcvd.code == 4403
    assert closed.value.rcvd.reason.startswith("resume token is unknown, spent or expired")
    assert (await alice_again(hub)).welcome["content"]["resumed"] is False  # others carry on


async def alice_again(hub) -> Client:
    client = await Client.connect(hub.url, hub.token("alice"))
    await client.close()
    return client


async def test_subscribe_since_another_epoch_is_not_recovered(hub):
    alice, bob = await room_with(hub, "ep", "alice", "bob")
    sent = await say(bob, "ep", "a", "b")
    ack = await alice.ask("subscribe", {"topic": "room:ep", "since": {"epoch": "gone", "seq": 1}})
    assert ack["recovered"] is False
    assert ack["seq"] == sent[-1]  # where to resume from after reloading history
    current = await alice.ask("subscribe", {"topic": "room:ep",
                                            "since": {"epoch": ack["epoch"], "seq": sent[0]}})
    assert current["recovered"] is True
    await alice.close()
    await bob.close()


async def test_a_pong_confirms_what_was_read_so_a_resume_repeats_nothing(deploy):
    # pings every 3 s: a socket silent for 6 s is closed (4408), well past the gaps between
    # the reader's frames on a loaded machine (at 1 s, 2 s was not)
    url, hub = await deploy(WS_HEARTBEAT_INTERVAL="3")
    owner = await Client.connect(url, hub.token("owner"))
    reader = await Client.connect(url, hub.token("reader"))
    await owner.ask("room.create", {"room_id": "p", "name": "p"})
    await reader.ask("room.join", {"room": "p"})
    sent = await say(owner, "p", "a", "b")
    await owner.close()  # it never answers pings: a socket of its own for each turn
    assert await seqs(reader, "p", 2) == sent
    held = [f for f in reader.inbox if f["type"] == "ping"]
    for ping in held:  # pongs answer pings in order: answer those read before seq 2 first
        reader.inbox.remove(ping)
        await reader.send("pong")
    await reader.expect("ping", within=15)  # read after seq 2, so queued after it
    await reader.send("pong")  # confirms 1-2
    assert (await reader.ask("ping"))["server_time_ms"]  # the pong has been handled
    token = reader.welcome["content"]["resume_token"]
    await reader.close()
    owner = await Client.connect(url, hub.token("owner"))
    later = await say(owner, "p", "c")
    back = await Client.connect(url, hub.token("reader"), query=f"?resume={token}")
    assert (await back.expect("subscribed", topic="room:p"))["content"]["recovered"] is True
    first = await back.expect("chat.message", topic="room:p")
    assert first["seq"] == later[0]  # replay starts after what the pong confirmed
    await back.close()
    await owner.close()


async def test_events_older_than_the_window_are_not_recovered(deploy):
    url, hub = await deploy(RTHUB_STREAM_RETENTION_S="1")
    owner = await Client.connect(url, hub.token("owner"))
    reader = await Client.connect(url, hub.token("reader"))
    await owner.ask("room.create", {"room_id": "old", "name": "old"})
    first = await reader.ask("room.join", {"room": "old"})
    sent = await say(owner, "old", "a")
    await asyncio.sleep(1.5)  # the behaviour under test is the passing of the window
    ack = await reader.ask("subscribe", {"topic": "room:old",
                                         "since": {"epoch": first["epoch"], "seq": 0}})
    assert ack["recovered"] is False
    assert ack["seq"] == sent[-1]


async def test_a_subscriber_that_saw_nothing_still_gets_an_offset(hub):
    alice, = await room_with(hub, "quiet", "alice")
    ack = await alice.ask("subscribe", {"topic": "room:quiet"})
    assert ack["seq"] == 0
    assert ack["epoch"]
    assert ack["recovered"] is False
    await alice.close()


async def test_two_replicas_deliver_to_each_others_sockets_through_redis(hub):
    clients = []
    for i in range(12):  # connect until sockets sit on both replicas
        clients.append(await Client.connect(hub.url, hub.token(f"u{i}")))
        gateways = {c.welcome["content"]["gateway"] for c in clients}
        if len(gateways) == 2:
            break
    assert len(gateways) == 2, "the proxy never placed a socket on the second replica"
    sender, receiver = clients[0], clients[-1]
    assert sender.welcome["content"]["gateway"] != receiver.welcome["content"]["gateway"]
    await sender.ask("room.create", {"room_id": "x", "name": "x"})
    await receiver.ask("room.join", {"room": "x"})
    await say(sender, "x", "across")
    frame = await receiver.expect("chat.message", topic="room:x")
    assert frame["content"]["text"] == "across"
    for client in clients:
        await client.close()


async def test_a_host_killed_mid_stream_loses_no_acknowledged_message(hub):
    alice, bob = await room_with(hub, "k", "alice", "bob")
    host = hub.system.host(hub.system.host_for((hub.tenant, "room", "k")))
    pid = (await host.stats.remote())["pid"]
    acked: dict[str, int] = {}
    halfway = asyncio.Event()

    async def talk() -> None:
        for i in range(60):
            text = f"m{i}"
            for _ in range(50):  # retry with the same client_msg_id until acknowledged
                frame_id = await alice.send("chat.send", {"room": "k", "text": text,
                                                          "client_msg_id": text})
                reply = await alice.expect_ref(frame_id)
                if reply["type"] == "ack":
                    acked[text] = reply["content"]["seq"]
                    break
                assert reply["content"]["code"] == Unavailable.code, reply
            if len(acked) == 20:
                halfway.set()

    async def kill() -> None:
        await halfway.wait()
        ray.kill(host, no_restart=False)

    await asyncio.gather(talk(), kill())
    assert (await host.stats.remote())["pid"] != pid  # later acks came from the restarted host
    history = await bob.ask("chat.history", {"room": "k", "limit": 100})
    stored = {m["text"]: m["seq"] for m in history["messages"]}
    assert stored == acked  # every acknowledged message, once, with its seq
    assert sorted(stored.values()) == list(range(2, 62))  # bob's room.joined is seq 1
    await alice.close()
    await bob.close()


async def test_a_redeploy_drains_with_1012_and_clients_resume_on_the_new_replica(deploy):
    """``serve deploy`` of a changed config: Serve starts the new replica, then drains the
    old one, whose sockets get 1012 and resume on the new one with nothing missed."""
    url, hub = await deploy()
    alice, bob = await room_with(hub, "rd", "alice", "bob")
    before = alice.welcome["content"]["gateway"]
    sent = await say(bob, "rd", "a", "b")
    assert await seqs(alice, "rd", 2) == sent
    token = alice.welcome["content"]["resume_token"]
    changed = hub.settings.replace(log_level="DEBUG")  # a new config: a new replica
    redeploy = asyncio.create_task(asyncio.to_thread(
        rayserve.run, build(changed), name=hub.app_name, route_prefix=f"/{hub.app_name}"))
    assert await alice.closed_with(within=60) == 1012
    assert await bob.closed_with(within=60) == 1012
    await redeploy
    bob = await Client.connect(url, hub.token("bob"))
    missed = await say(bob, "rd", "c")  # while alice is away
    back = await Client.connect(url, hub.token("alice"), query=f"?resume={token}")
    assert back.welcome["content"]["resumed"] is True
    assert back.welcome["content"]["gateway"] != before
    assert await seqs(back, "rd", 1, after=sent[-1]) == missed
    await back.close()
    await bob.close()
