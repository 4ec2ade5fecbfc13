"""The minimal chat path through the real hub: socket → gateway → room entity → Redis → sockets."""

import asyncio

import pytest

from tests.serve.client import Client

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


async def make_room(hub, owner: Client, room: str) -> dict:
    return await owner.ask("room.create", {"room_id": room, "name": room})


async def test_two_clients_in_a_room_exchange_messages_in_order(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    created = await make_room(hub, alice, "lobby")
    assert created["topic"] == "room:lobby"
    await bob.ask("room.join", {"room": "lobby"})
    seqs = []
    for i in range(5):
        sender = alice if i % 2 == 0 else bob
        ack = await sender.ask("chat.send", {"room": "lobby", "text": f"m{i}",
                                             "client_msg_id": f"k{i}"})
        seqs.append(ack["seq"])
    assert seqs == list(range(seqs[0], seqs[0] + 5))  # consecutive: nothing between them
    for reader in (alice, bob):
        texts = [(await reader.expect("chat.message", topic="room:lobby"))["content"]["text"]
                 for _ in range(5)]
        assert texts == [f"m{i}" for i in range(5)]
    await alice.close()
    await bob.close()


async def test_a_resent_message_is_stored_and_broadcast_once(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    await make_room(hub, alice, "dedupe")
    first = await alice.ask("chat.send", {"room": "dedupe", "text": "hi", "client_msg_id": "x"})
    again = await alice.ask("chat.send", {"room": "dedupe", "text": "hi", "client_msg_id": "x"})
    assert again == first
    history = await alice.ask("chat.history", {"room": "dedupe"})
    assert [m["text"] for m in history["messages"]] == ["hi"]
    assert history["more"] is False
    await alice.close()


async def test_history_pages_backwards_by_seq(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    await make_room(hub, alice, "paged")
    for i in range(7):
        await alice.ask("chat.send", {"room": "paged", "text": f"m{i}", "client_msg_id": str(i)})
    page = await alice.ask("chat.history", {"room": "paged", "limit": 3})
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7]
    assert page["more"] is True
    older = await alice.ask("chat.history", {"room": "paged", "limit": 10, "before_seq": 5})
    assert [m["text"] for m in older["messages"]] == ["m0", "m1", "m2", "m3"]
    assert older["more"] is False
    await alice.close()


async def test_fifty_clients_receive_every_message_in_order(hub):
    owner = await Client.connect(hub.url, hub.token("owner"))
    await make_room(hub, owner, "big")
    members = await asyncio.gather(*(Client.connect(hub.url, hub.token(f"u{i}"))
                                     for i in range(50)))
    await asyncio.gather(*(m.ask("room.join", {"room": "big"}) for m in members))
    senders = members[:5]

    async def talk(n: int, client: Client) -> None:
        for i in range(20):
            await client.ask("chat.send", {"room": "big", "text": f"{n}:{i}",
                                           "client_msg_id": f"{n}-{i}"})

    await asyncio.gather(*(talk(n, c) for n, c in enumerate(senders)))
    for member in members:
        seqs, texts = [], []
        for _ in range(100):
            frame = await member.expect("chat.message", topic="room:big")
            seqs.append(frame["seq"])
            texts.append(frame["content"]["text"])
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 100
        for n in range(5):  # each sender's messages in the order sent
            assert [t for t in texts if t.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(20)]
    await asyncio.gather(*(m.close() for m in [owner, *members]))


async def test_only_members_may_follow_or_read_a_private_room(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    mallory = await Client.connect(hub.url, hub.token("mallory"))
    await alice.ask("room.create", {"room_id": "secret", "name": "s", "visibility": "private"})
    assert (await mallory.error_for("room.join", {"room": "secret"}))["code"] == "forbidden"
    assert (await mallory.error_for("subscribe", {"topic": "room:secret"}))["code"] == "forbidden"
    assert (await mallory.error_for("chat.history", {"room": "secret"}))["code"] == "forbidden"
    denied = await mallory.error_for("chat.send", {"room": "secret", "text": "x",
                                                   "client_msg_id": "1"})
    assert denied["code"] == "forbidden"
    await alice.close()
    await mallory.close()


async def test_a_reply_names_a_message_of_the_room(hub):
    alice = await Client.connect(hub.url, hub.token("alice"))
    await make_room(hub, alice, "replies")
    first = await alice.ask("chat.send", {"room": "replies", "text": "q", "client_msg_id": "1"})
    await alice.ask("chat.send", {"room": "replies", "text": "a", "client_msg_id": "2",
                                  "reply_to": first["message_id"]})
    broadcast = [(await alice.expect("chat.message", topic="room:replies"))["content"]
                 for _ in range(2)]
    assert broadcast[1]["reply_to"] == first["message_id"]
    error = await alice.error_for("chat.send", {"room": "replies", "text": "lost",
                                                "client_msg_id": "3", "reply_to": "nope"})
    assert error == {"code": "not_found",
                     "message": "no message 'nope' in room 'replies' to reply to"}
    history = await alice.ask("chat.history", {"room": "replies"})
    assert [(m["text"], m.get("reply_to")) for m in history["messages"]] == \
        [("q", None), ("a", first["message_id"])]
    await alice.close()
