"""The gateway's routes without Serve, Ray or Redis: the channel specs' routes and the
hand-written ones, run by the router against real entity kinds in an ``actors.testing``
sandbox, through the few lines of ``serve.handlers.Gateway`` a test has to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.channels import CHANNELS
from actors.testing import Sandbox, SandboxRef, assert_broadcast
from fanout.streams import Position
from rthub.errors import BadRequest, Forbidden, NotFound
from serve import chat, playlists, topics
from serve.auth import Identity
from serve.channel_routes import channel_routes
from serve.router import Router

ROUTER = Router(channel_routes(CHANNELS.values()), topics.ROUTES, chat.ROUTES,
                playlists.ROUTES)


@dataclass
class Socket:
    user: str
    id: str = "c1"
    ip: str = "203.0.113.9"
    sent: list[dict] = field(default_factory=list)
    positions: dict[str, list[Any]] = field(default_factory=dict)  # none: every join follows

    @property
    def identity(self) -> Identity:
        return Identity(self.user, "t", frozenset(), self.user, 0)

    def send(self, envelope: dict[str, Any]) -> None:
        self.sent.append(envelope)

    def confirm(self) -> None:
        pass


class Gateway:
    """``serve.handlers.Gateway`` over a sandbox: what it follows is a set."""

    def __init__(self) -> None:
        self.sandbox = Sandbox()
        self.settings = self.sandbox.settings
        self.keyring = None
        self.following: set[tuple[str, str]] = set()
        self.replies: list[tuple[str, dict]] = []

    def ref(self, kind: str, ident: str, tenant: str) -> SandboxRef:
        return self.sandbox.ref(kind, ident, tenant)

    async def db(self) -> Any:
        raise AssertionError("these routes need no storage")

    async def follow(self, conn: Socket, topic: str, since: Any, frame_id: Any,
                     answer: bool = True, record: bool = True) -> Position:
        self.following.add((conn.user, topic))
        return Position("e1", 0, False, [])

    async def unfollow(self, conn: Socket, topic: str) -> None:
        self.following.discard((conn.user, topic))

    def replied(self, message_type: str, reply: dict[str, Any]) -> None:
        self.replies.append((message_type, reply))


async def send(gw: Gateway, conn: Socket, message_type: str, **content: Any) -> dict | None:
    return await ROUTER.dispatch(gw, conn, {"type": message_type, "content": content})


async def test_a_party_is_created_joined_and_left_through_its_channel_spec():
    gw, dj, guest = Gateway(), Socket("dj"), Socket("gus", id="c2")
    made = await send(gw, dj, "party.create", party_id="p1", name="Friday")
    assert (made["party_id"], made["topic"]) == ("p1", "party:p1")
    joined = await send(gw, guest, "party.join", party="p1")
    assert joined["topic"] == "party:p1"
    assert ("gus", "party:p1") in gw.following
    assert_broadcast(gw.sandbox.runs[-1], "party.joined", seq=1, user="gus")
    await send(gw, guest, "party.leave", party="p1")
    left = assert_broadcast(gw.sandbox.runs[-1], "party.left", seq=2, user="gus")
    assert left.removes == "gus"  # the entity says who loses the topic, on every device
    assert ("gus", "party:p1") not in gw.following


async def test_the_gateway_fills_user_device_and_ip_and_the_client_may_not():
    gw, dj = Gateway(), Socket("dj", id="sock-7")
    await send(gw, dj, "party.create", party_id="p1", name="Friday")
    await send(gw, dj, "party.quality", party="p1", bandwidth_kbps=2000.0)
    party = gw.sandbox.entity("party", "p1")
    assert "sock-7" in party.state.tiers  # the device is the socket, not the client's word
    assert gw.replies[-1][0] == "party.quality"  # the metrics see every direct answer
    for forged in ({"user": "eve"}, {"device": "x"}, {"ip": "1.2.3.4"}):
        with pytest.raises(BadRequest, match="comes from your token or connection"):
            await send(gw, dj, "party.control", party="p1", action="play", **forged)


async def test_a_client_names_the_member_user_and_the_message_calls_it_target():
    gw, owner, bob = Gateway(), Socket("olga"), Socket("bob", id="c2")
    await send(gw, owner, "room.create", room_id="r1", name="Room", visibility="private")
    await send(gw, owner, "room.invite", room="r1", user="bob")
    await send(gw, bob, "room.join", room="r1")
    await send(gw, owner, "room.kick", room="r1", user="bob")
    assert_broadcast(gw.sandbox.runs[-1], "room.left", user="bob", by="olga")
    with pytest.raises(BadRequest, match=r"Kick: missing field 'user'"):
        await send(gw, owner, "room.kick", room="r1")


async def test_a_null_retention_means_forever_and_updates_carry_the_client_address():
    gw, owner = Gateway(), Socket("olga")
    await send(gw, owner, "room.create", room_id="r1", name="Room", retention_s=60)
    await send(gw, owner, "room.update", room="r1", retention_s=None)
    assert gw.sandbox.entity("room", "r1").state.retention_s is None
    (updated,) = gw.sandbox.runs[-1].events
    assert updated.ip == "203.0.113.9"


async def test_subscribe_asks_the_entity_and_names_the_topics_there_are():
    gw, owner, eve = Gateway(), Socket("olga"), Socket("eve", id="c3")
    await send(gw, owner, "playlist.create", playlist_id="pl", name="Mix")
    with pytest.raises(Forbidden):
        await send(gw, eve, "subscribe", topic="playlist:pl")
    await send(gw, eve, "subscribe", topic="user:eve")
    with pytest.raises(Forbidden, match="your own user topic"):
        await send(gw, eve, "subscribe", topic="user:olga")
    every = "room:<id>, party:<id>, playlist:<id>, poll:<id>, user:<id>"
    with pytest.raises(NotFound, match=every):
        await send(gw, eve, "subscribe", topic="nope:1")
    assert gw.following == {("olga", "playlist:pl"), ("eve", "user:eve")}


async def test_open_follows_before_it_reads():
    gw, owner = Gateway(), Socket("olga")
    await send(gw, owner, "playlist.create", playlist_id="pl", name="Mix")
    await send(gw, owner, "unsubscribe", topic="playlist:pl")
    opened = await send(gw, owner, "playlist.open", playlist="pl")
    assert (opened["version"], opened["topic"]) == (0, "playlist:pl")
    assert ("olga", "playlist:pl") in gw.following


async def test_a_users_own_inbox_is_named_by_the_token_not_the_frame():
    gw, ana = Gateway(), Socket("ana")
    box = gw.sandbox.entity("inbox", "ana")
    gw.sandbox.run(box, "inbox.deliver", id="n1", category="social", priority=1, title="Hi",
                   body="x")
    acked = await send(gw, ana, "notification.ack", id="n1", state="read")
    assert acked == {"id": "n1", "state": "read", "unread": 0}
    listed = await send(gw, ana, "notification.list")
    assert [n["state"] for n in listed["items"]] == ["read"]
    with pytest.raises(BadRequest, match=r"unknown message type 'inbox\.deliver'"):
        await send(gw, ana, "inbox.deliver", id="n2", category="x", priority=3, title="t",
                   body="b")  # only the dispatcher delivers


def test_lanes_follow_the_entity_a_frame_names():
    def lane(message_type: str, **content: Any) -> str | None:
        return ROUTER.lane({"type": message_type, "content": content})

    assert lane("chat.send", room="r1", text="x") == "room:r1"
    assert lane("party.create", party_id="p9") == "party:p9"
    assert lane("room.create", room_id="r2") == "room:r2"
    assert lane("presence.list", topic="playlist:x") == "playlist:x"
    assert lane("chat.search", query="q") == ""
    assert lane("ping") is None
    assert ROUTER.pipelined >= {"chat.send", "party.control", "playlist.op", "room.invite"}
    assert "party.join" not in ROUTER.pipelined  # it follows the topic after its ask
