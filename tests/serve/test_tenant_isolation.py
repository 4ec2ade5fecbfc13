"""Tenant isolation (issue "Security"): every client message type the gateway routes and
every route of the HTTP API, tried by users of tenant B with tenant A's very ids (rooms,
parties, playlists, polls, messages, attachments, notifications, devices, and A's user ids:
B's users are called the same). B gets an error or an answer about its own (empty) entity,
never anything of A's; B's sockets following the same topic names hear nothing while A
publishes; B's admin and notifier reach nothing of A's. And tenant names that extend one
another ('acme', 'acme:eu') share no revocation entry or rate-limit bucket.

The matrix is keyed by what a real gateway's router and ``HttpApi.routes()`` list, so a
message type or route added later fails the first test until it has a row here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as aioredis
import websockets

from serve.gateway import GatewayCore
from serve.http_api import HttpApi
from serve.security.limits import RateLimiter
from serve.security.revocation import Revocations
from storage import notify_targets
from tests.serve.client import Client, png
from tests.serve.conftest import Hub

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)

ROOM, PARTY, PLAYLIST, POLL = "iso-room", "iso-party", "iso-list", "iso-poll"
A_NAME, B_NAME = "Ana of A", "Ana of B"  # the same user id in both tenants, told apart here
DEFAULT_PREFS = {"locale": None, "timezone": None, "quiet_hours": None, "mute": {},
                 "digest": {}}


@dataclass
class World:
    """Tenant A, made once for the module: one of everything, and the ids B will try."""

    hub: Hub
    core: GatewayCore  # a gateway of the deployed hub's settings: its router and routes
    ana_token: str
    ana: Client
    ben: Client
    word: str  # in every text, name and track of A's: in nothing B ever gets
    tracks: list[str] = field(default_factory=list)
    first: str = ""  # ana's message (with the attachment)
    reply: str = ""  # ben's reply to it
    attachment: str = ""
    notification: str = ""
    note_key: str = ""  # the Idempotency-Key A's notification was sent with
    device: str = ""  # the email address registered for A's ana
    version: int = 0  # the playlist's
    audit_ids: set[int] = field(default_factory=set)

    def markers(self) -> list[str]:
        """What is A's alone: a frame or answer of B's holding one of these leaked it."""
        return [m for m in (self.word, self.first, self.reply, self.attachment,
                            self.notification, A_NAME) if m]

    async def http(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.request(method, f"{self.hub.http}{path}", headers=headers,
                                        **kwargs)


@dataclass
class TenantB:
    """A fresh tenant whose users share A's user ids."""

    hub: Hub
    tenant: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")

    def token(self, user: str = "ana", **claims: Any) -> str:
        if user == "ana":
            claims.setdefault("name", B_NAME)
        return self.hub.token(user, tenant=self.tenant, **claims)

    async def connect(self, user: str = "ana") -> Client:
        return await Client.connect(self.hub.url, self.token(user))


def leaks(found: Any, w: World, sent: Any = None, extra: tuple[str, ...] = ()) -> list[str]:
    """A's markers in ``found`` that are not simply echoed from what B ``sent``."""
    text, echoed = json.dumps(found), json.dumps(sent)
    return [m for m in (*w.markers(), *extra) if m in text and m not in echoed]


async def seen(client: Client, frame_type: str, topic: str, within: float = 15,
               **content: Any) -> dict[str, Any]:
    """The first frame of ``frame_type`` on ``topic`` whose content has these values."""
    return await client.expect(frame_type, within, has=content, topic=topic)


async def upload(w: World, token: str, data: bytes) -> httpx.Response:
    return await w.http("POST", "/v1/attachments", token,
                        files={"file": ("pic.png", data, "image/png")})


async def notify(w: World, token: str, body: dict[str, Any], key: str | None = None
                 ) -> httpx.Response:
    headers = {"idempotency-key": key} if key else {}
    return await w.http("POST", "/v1/notifications", token, json=body, headers=headers)


# -- tenant A -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def world(deployed: tuple) -> AsyncIterator[World]:
    """Tenant A's users make and use one of everything, once for the module (each test
    then brings a tenant B of its own)."""
    url, http, operator, settings, system = deployed
    hub = Hub(url, http, operator, settings, system, tenant=f"t{uuid.uuid4().hex[:10]}")
    core = GatewayCore(settings)
    token = hub.token("ana", name=A_NAME)
    w = World(hub, core, token, await Client.connect(url, token),
              await Client.connect(url, hub.token("ben")), f"aardvark{uuid.uuid4().hex[:8]}")
    try:
        await make_tenant_a(w)
        yield w
    finally:
        for client in (w.ana, w.ben):
            await client.close()
        await core.close()


async def make_tenant_a(w: World) -> None:
    ana, ben, word = w.ana, w.ben, w.word
    # a public room (anyone *in the tenant* may join), messages, an attachment, roles
    await ana.ask("room.create", {"room_id": ROOM, "name": f"{word} room"})
    await ben.ask("room.join", {"room": ROOM})
    stored = await upload(w, w.ana_token, png())
    assert stored.status_code == 201, stored.text
    w.attachment = stored.json()["attachment_id"]
    w.first = (await ana.ask("chat.send", {"room": ROOM, "text": f"the {word} song",
                                           "client_msg_id": "a1",
                                           "attachments": [w.attachment]}))["message_id"]
    reply = await ben.ask("chat.send", {"room": ROOM, "text": f"{word} indeed",
                                        "client_msg_id": "a2", "reply_to": w.first})
    w.reply = reply["message_id"]
    await ben.ask("chat.edit", {"room": ROOM, "message_id": w.reply, "text": f"{word} edited"})
    await ben.ask("chat.read", {"room": ROOM, "seq": reply["seq"]})
    await ana.ask("room.role", {"room": ROOM, "user": "ben", "role": "moderator"})
    # a party with a queue, playing (a listening event); a playlist with ops; a poll
    w.tracks = [f"{word}-track-{n}" for n in range(3)]
    await ana.ask("party.create", {"party_id": PARTY, "name": f"{word} party",
                                   "mode": "everyone"})
    await ben.ask("party.join", {"party": PARTY})
    for n, track in enumerate(w.tracks):
        await ana.ask("party.queue", {"party": PARTY, "op": "add", "track": track,
                                      "item_id": f"{word}-q{n}"})
    await ana.ask("party.control", {"party": PARTY, "action": "play"})
    await ana.ask("playlist.create", {"playlist_id": PLAYLIST, "name": f"{word} list"})
    for n, track in enumerate(w.tracks[:2]):
        await ana.ask("playlist.op", {"playlist": PLAYLIST, "base_version": n, "client_id": "a",
                                      "client_seq": n + 1, "op": {"insert": {
                                          "index": n, "track": track, "item_id": f"{word}-i{n}"}}})
    await ana.ask("playlist.share", {"playlist": PLAYLIST, "user": "ben", "role": "editor"})
    w.version = (await ben.ask("playlist.open", {"playlist": PLAYLIST}))["version"]
    await ana.ask("poll.create", {"poll_id": POLL, "question": f"{word}?",
                                  "options": [f"{word} yes", f"{word} no"]})
    await ben.ask("poll.open", {"poll": POLL})
    await ben.ask("poll.vote", {"poll": POLL, "option": 0})
    # preferences, a notification in ana's inbox, a device, the audit rows
    await ana.ask("notification.prefs", {"locale": "fr", "timezone": "Europe/Paris"})
    await ana.ask("subscribe", {"topic": "user:ana"})
    await ben.ask("subscribe", {"topic": "user:ben"})
    w.note_key = f"order-{word}"
    sent = await notify(w, w.hub.token("svc", scopes="notify:send"),
                        {"user_id": "ana", "title": f"{word} note", "content": f"{word} body"},
                        key=w.note_key)
    assert sent.status_code == 202, sent.text
    w.notification = sent.json()["id"]
    await seen(ana, "notification", "user:ana", id=w.notification)
    w.device = f"{word}@a.example"
    pool = await asyncpg.create_pool(w.hub.settings.postgres_url, min_size=1, max_size=1)
    try:  # no provider is configured on this hub, so not through POST /v1/devices
        await notify_targets.register(pool, w.hub.tenant, "ana", {
            "kind": "email", "address": w.device, "app": "default", "data": {}}, 10)
    finally:
        await pool.close()
    await controls(w)


async def controls(w: World) -> None:
    """A sees its own data through the very reads B will try: B's empty answers mean
    isolation, not an empty hub."""
    admin = w.hub.token("root", scopes="admin")
    entries = (await w.http("GET", "/v1/audit", admin)).json()["entries"]
    w.audit_ids = {e["id"] for e in entries}
    assert ("ana", "room.role", "ben") in {(e["actor"], e["action"], e["target"])
                                          for e in entries}
    hits = (await w.ana.ask("chat.search", {"query": w.word}))["hits"]
    assert w.first in {h["message_id"] for h in hits}
    found = await w.http("GET", f"/v1/attachments/{w.attachment}", w.ana_token)
    assert (found.status_code, found.content) == (200, png())
    devices = (await w.http("GET", "/v1/devices", w.ana_token)).json()["devices"]
    assert [d["address"] for d in devices] == [w.device]
    answer = (await w.http("POST", "/v1/recommendations", w.ana_token, json={})).json()
    assert {t["track"] for t in answer["tracks"]} & set(w.tracks), answer
    for _ in range(200):  # ben's presence comes from his gateway (a one-way message)
        listed = await w.ana.ask("presence.list", {"topic": f"room:{ROOM}"})
        if {m["user"] for m in listed["members"]} == {"ana", "ben"}:
            break
    assert {m["user"] for m in listed["members"]} == {"ana", "ben"}


async def a_views(w: World) -> dict[str, Any]:
    """Everything of A's that a write of B's could have touched, as A reads it."""
    ana = w.ana
    return {"room": await ana.ask("room.join", {"room": ROOM}),
            "history": await ana.ask("chat.history", {"room": ROOM}),
            "party": await ana.ask("party.join", {"party": PARTY}),
            "playlist": await ana.ask("playlist.open", {"playlist": PLAYLIST}),
            "poll": await ana.ask("poll.open", {"poll": POLL}),
            "inbox": await ana.ask("notification.list", {}),
            "prefs": await ana.ask("notification.prefs", {})}


# -- the message matrix -------------------------------------------------------------------------
Content = Callable[[World], dict[str, Any]]
Check = Callable[[dict[str, Any], World], bool]
NOT_FOUND, FORBIDDEN, BAD_REQUEST, CONFLICT = "not_found", "forbidden", "bad_request", "conflict"
NO_REPLY, TIME_PONG = "no reply", "time.pong"


@dataclass(frozen=True)
class Probe:
    """One frame B sends with A's ids, and what B must get: an error code, ``NO_REPLY``,
    ``TIME_PONG``, or a check of the ``ack`` content (which may echo what B sent, and
    nothing else of A's)."""

    content: Content
    expect: str | Check


@dataclass(frozen=True)
class Row:
    """What tenant B gets for one message type: ``before`` B has entities of A's ids,
    ``creates`` them as its own, and ``after``."""

    before: tuple[Probe, ...] = ()
    creates: tuple[Probe, ...] = ()
    after: tuple[Probe, ...] = ()


def topic(name: str) -> Content:
    return lambda w: {"topic": name}


def room(**more: Any) -> Content:
    return lambda w: {"room": ROOM, **more}


def party(**more: Any) -> Content:
    return lambda w: {"party": PARTY, **more}


def playlist(**more: Any) -> Content:
    return lambda w: {"playlist": PLAYLIST, **more}


def poll(**more: Any) -> Content:
    return lambda w: {"poll": POLL, **more}


def fresh_stream(ack: dict[str, Any], w: World) -> bool:
    """B's own stream of that topic name: nothing on it yet (A's is well past 0)."""
    return ack["seq"] == 0


def only_b_present(ack: dict[str, Any], w: World) -> bool:
    """B's entity of that id: B's ana its one member, A's users nowhere."""
    return ack["total"] == 1 and all((m["user"], m["name"]) == ("ana", B_NAME)
                                     for m in ack["members"])


ROOM_TOPIC, PARTY_TOPIC = f"room:{ROOM}", f"party:{PARTY}"
PLAYLIST_TOPIC, POLL_TOPIC = f"playlist:{PLAYLIST}", f"poll:{POLL}"
B_TEXT = "hello from B"

MATRIX: dict[str, Row] = {
    # the gateway's own: no tenant's data in them
    "ping": Row(before=(Probe(lambda w: {}, lambda a, w: set(a) == {"server_time_ms"}),)),
    "pong": Row(before=(Probe(lambda w: {}, NO_REPLY),)),
    "time.ping": Row(before=(Probe(lambda w: {"t0": 1}, TIME_PONG),)),
    # A's token for a user of the same name is not a fresh token for B's socket
    "session.refresh": Row(before=(Probe(lambda w: {"token": w.ana_token}, FORBIDDEN),)),
    # following topics: A's entities do not exist for B; B's own streams start empty
    "subscribe": Row(
        before=(Probe(topic(ROOM_TOPIC), NOT_FOUND), Probe(topic(PARTY_TOPIC), NOT_FOUND),
                Probe(topic(PLAYLIST_TOPIC), NOT_FOUND), Probe(topic(POLL_TOPIC), NOT_FOUND),
                Probe(topic("user:ben"), FORBIDDEN), Probe(topic("user:ana"), fresh_stream)),
        after=(Probe(topic(ROOM_TOPIC), fresh_stream), Probe(topic(PARTY_TOPIC), fresh_stream),
               Probe(topic(PLAYLIST_TOPIC), fresh_stream),
               Probe(topic(POLL_TOPIC), fresh_stream))),
    "unsubscribe": Row(before=(Probe(topic(ROOM_TOPIC), lambda a, w: a == {"topic": ROOM_TOPIC}),)),
    "presence.list": Row(
        before=(Probe(topic(ROOM_TOPIC), NOT_FOUND), Probe(topic(PARTY_TOPIC), NOT_FOUND),
                Probe(topic(PLAYLIST_TOPIC), NOT_FOUND)),
        after=(Probe(topic(ROOM_TOPIC), only_b_present),
               Probe(topic(PARTY_TOPIC), only_b_present),
               Probe(topic(PLAYLIST_TOPIC), only_b_present))),
    # chat
    "room.create": Row(creates=(Probe(
        lambda w: {"room_id": ROOM, "name": "B room", "visibility": "public"},
        lambda a, w: (a["room_id"], a["seq"], "existing" in a) == (ROOM, 0, False)),)),
    "room.join": Row(before=(Probe(room(), NOT_FOUND),),
                     after=(Probe(room(), lambda a, w: (a["seq"], a["role"], a["name"]) == (
                         0, "owner", "B room")),)),
    "room.leave": Row(before=(Probe(room(), NOT_FOUND),)),
    "room.invite": Row(before=(Probe(room(user="ben"), NOT_FOUND),),
                       after=(Probe(room(user="ben"), lambda a, w: a == {
                           "room_id": ROOM, "invited": "ben"}),)),
    "room.kick": Row(before=(Probe(room(user="ben"), NOT_FOUND),),
                     after=(Probe(room(user="ben"), NOT_FOUND),)),  # ben is no member of B's
    "room.role": Row(before=(Probe(room(user="ben", role="moderator"), NOT_FOUND),),
                     after=(Probe(room(user="ben", role="moderator"), NOT_FOUND),)),
    "room.update": Row(before=(Probe(room(name="renamed by B"), NOT_FOUND),)),
    "chat.send": Row(
        before=(Probe(room(text="b", client_msg_id="a1"), NOT_FOUND),),
        after=(Probe(lambda w: {"room": ROOM, "text": "b", "client_msg_id": "b0",
                                "attachments": [w.attachment]}, NOT_FOUND),
               Probe(lambda w: {"room": ROOM, "text": "b", "client_msg_id": "b0",
                                "reply_to": w.first}, NOT_FOUND),
               # A's client_msg_id: a new message of B's room, not A's resent
               Probe(room(text=B_TEXT, client_msg_id="a1"),
                     lambda a, w: a["message_id"] != w.first and a["seq"] == 1))),
    "chat.edit": Row(
        before=(Probe(lambda w: {"room": ROOM, "message_id": w.first, "text": "b"}, NOT_FOUND),),
        after=(Probe(lambda w: {"room": ROOM, "message_id": w.reply, "text": "b"}, NOT_FOUND),)),
    "chat.delete": Row(
        before=(Probe(lambda w: {"room": ROOM, "message_id": w.first}, NOT_FOUND),),
        after=(Probe(lambda w: {"room": ROOM, "message_id": w.first}, NOT_FOUND),)),
    "chat.typing": Row(before=(Probe(room(typing=True), NOT_FOUND),),
                       after=(Probe(room(typing=True), lambda a, w: a == {}),)),
    "chat.read": Row(before=(Probe(room(seq=1), NOT_FOUND),),
                     after=(Probe(room(seq=1), lambda a, w: a == {
                         "room_id": ROOM, "read_seq": 1}),)),
    "chat.history": Row(
        before=(Probe(room(), NOT_FOUND),),
        after=(Probe(room(), lambda a, w: [(m["text"], m["sender"]) for m in a["messages"]]
                     == [(B_TEXT, "ana")] and a["more"] is False),)),
    "chat.search": Row(
        before=(Probe(lambda w: {"query": w.word}, lambda a, w: a == {"hits": []}),
                Probe(lambda w: {"query": w.word, "room": ROOM}, lambda a, w: a == {"hits": []})),
        after=(Probe(lambda w: {"query": w.word}, lambda a, w: a == {"hits": []}),
               Probe(lambda w: {"query": "hello"}, lambda a, w: [h["text"] for h in a["hits"]]
                     == [B_TEXT]))),
    # listening parties
    "party.create": Row(creates=(Probe(
        lambda w: {"party_id": PARTY, "name": "B party", "mode": "everyone"},
        lambda a, w: (a["party_id"], a["seq"]) == (PARTY, 0)),)),
    "party.join": Row(before=(Probe(party(), NOT_FOUND),),
                      after=(Probe(party(), lambda a, w: a["queue"] == []
                                   and a["state"]["track"] is None),)),
    "party.leave": Row(before=(Probe(party(), NOT_FOUND),)),
    "party.control": Row(before=(Probe(party(action="play"), NOT_FOUND),),
                         after=(Probe(party(action="play"), CONFLICT),)),  # B's queue: empty
    "party.queue": Row(
        before=(Probe(party(op="add", track="b"), NOT_FOUND),
                Probe(lambda w: {"party": PARTY, "op": "vote", "item_id": f"{w.word}-q0"},
                      NOT_FOUND)),
        after=(Probe(lambda w: {"party": PARTY, "op": "vote", "item_id": f"{w.word}-q0"},
                     lambda a, w: a["queue_version"] == 1),)),
    "party.quality": Row(before=(Probe(party(bandwidth_kbps=500), NOT_FOUND),),
                         after=(Probe(party(bandwidth_kbps=500),
                                      lambda a, w: a["changed"] is False),)),
    "party.report": Row(before=(Probe(party(position_ms=0, at_server_ms=0), NOT_FOUND),)),
    "party.host": Row(before=(Probe(party(user="ben"), NOT_FOUND),),
                      after=(Probe(party(user="ben"), BAD_REQUEST),)),  # not in B's party
    "party.kick": Row(before=(Probe(party(user="ben"), NOT_FOUND),),
                      after=(Probe(party(user="ben"), BAD_REQUEST),)),
    "party.end": Row(before=(Probe(party(), NOT_FOUND),)),
    # collaborative playlists
    "playlist.create": Row(creates=(Probe(
        lambda w: {"playlist_id": PLAYLIST, "name": "B list"},
        lambda a, w: (a["playlist_id"], a["version"], a["seq"]) == (PLAYLIST, 0, 0)),)),
    "playlist.open": Row(
        before=(Probe(playlist(), NOT_FOUND),),
        after=(Probe(playlist(), lambda a, w: (a["name"], a["version"], a["items"],
                                               a["collaborators"]) == (
            "B list", 0, [], [{"user": "ana", "role": "owner"}])),)),
    "playlist.op": Row(
        before=(Probe(lambda w: {"playlist": PLAYLIST, "base_version": 0, "client_id": "a",
                                 "client_seq": 1, "op": {"remove": {"item_id": f"{w.word}-i0"}}},
                      NOT_FOUND),),
        # A's item and A's (client_id, client_seq): nothing to remove, no earlier result
        after=(Probe(lambda w: {"playlist": PLAYLIST, "base_version": 0, "client_id": "a",
                                "client_seq": 1, "op": {"remove": {"item_id": f"{w.word}-i0"}}},
                     lambda a, w: a == {"version": 1, "op": None}),)),
    "playlist.history": Row(
        before=(Probe(playlist(from_version=0), NOT_FOUND),),
        after=(Probe(playlist(from_version=0), lambda a, w: [
            (o["version"], o["op"]) for o in a["ops"]] == [(1, None)]),)),
    "playlist.revert": Row(
        before=(Probe(playlist(to_version=0), NOT_FOUND),),
        after=(Probe(lambda w: {"playlist": PLAYLIST, "to_version": w.version}, BAD_REQUEST),)),
    "playlist.share": Row(
        before=(Probe(playlist(user="ben", role="editor"), NOT_FOUND),),
        after=(Probe(playlist(user="ben", role="viewer"), lambda a, w: a == {
            "playlist_id": PLAYLIST, "user": "ben", "role": "viewer"}),)),
    "playlist.suggest": Row(before=(Probe(playlist(), NOT_FOUND),),
                            after=(Probe(playlist(), lambda a, w: a["tracks"] == []),)),
    # polls (any user of the tenant may follow and vote: not another tenant's)
    "poll.create": Row(creates=(Probe(
        lambda w: {"poll_id": POLL, "question": "B?", "options": ["b1", "b2"]},
        lambda a, w: (a["poll_id"], a["seq"]) == (POLL, 0)),)),
    "poll.open": Row(before=(Probe(poll(), NOT_FOUND),),
                     after=(Probe(poll(), lambda a, w: (a["question"], a["counts"]) == (
                         "B?", [0, 0])),)),
    "poll.vote": Row(before=(Probe(poll(option=0), NOT_FOUND),),
                     after=(Probe(poll(option=1), lambda a, w: a == {"option": 1}),)),
    "poll.close": Row(before=(Probe(poll(), NOT_FOUND),)),
    # the inbox is the token's user's, in the token's tenant
    "notification.ack": Row(
        before=(Probe(lambda w: {"id": w.notification, "state": "read"}, NOT_FOUND),),
        after=(Probe(lambda w: {"id": w.notification, "state": "archived"}, NOT_FOUND),)),
    "notification.list": Row(before=(Probe(lambda w: {}, lambda a, w: a == {
        "items": [], "unread": 0, "more": False}),)),
    "notification.prefs": Row(before=(Probe(lambda w: {}, lambda a, w: a == DEFAULT_PREFS),)),
}


async def probe_once(b: Client, w: World, frame_type: str, probe: Probe) -> None:
    content = probe.content(w)
    frame_id = await b.send(frame_type, content)
    if probe.expect == NO_REPLY:  # a reply would come before the next frame's
        fence = await b.send("ping")
        await b.expect_ref(fence)
        assert [f for f in b.inbox if f.get("ref") == frame_id] == [], frame_type
        return
    reply = await b.expect_ref(frame_id)
    where = f"{frame_type} {content} -> {reply}"
    if probe.expect == TIME_PONG:
        assert (reply["type"], set(reply["content"]), reply["content"]["t0"]) == (
            "time.pong", {"t0", "t1", "t2"}, 1), where
    elif isinstance(probe.expect, str):
        assert (reply["type"], reply["content"].get("code")) == ("error", probe.expect), where
    else:
        assert reply["type"] == "ack", where
        assert probe.expect(reply["content"], w), where
        assert leaks(reply["content"], w, content) == [], where


async def test_every_message_type_and_http_route_has_a_row_in_the_matrix(world: World) -> None:
    """The router and the HTTP routes of a real gateway, not a list kept by hand: what is
    added later is tried here before it ships."""
    routed = set(world.core.router.handlers)
    assert sorted(routed - set(MATRIX)) == [], "message types with no row in MATRIX"
    assert sorted(set(MATRIX) - routed) == [], "rows of MATRIX the gateway no longer routes"
    assert [t for t, row in MATRIX.items() if not (row.before or row.creates or row.after)] == []
    routes = http_routes(world.core)
    assert sorted(routes - set(HTTP_MATRIX)) == [], "HTTP routes with no row in HTTP_MATRIX"
    assert sorted(set(HTTP_MATRIX) - routes) == [], "rows of HTTP_MATRIX no route answers"


async def test_b_using_a_ids_gets_an_error_or_its_own_empty_entity_for_every_message_type(
        world: World) -> None:
    """Every probe of the matrix: first while B has nothing of those ids (not_found, never
    A's entity), then B creates its own with A's ids (fresh, seq 0), then B reads and writes
    those (only B's own). A's data is unchanged by all of it."""
    w = world
    a_before = await a_views(w)
    b = TenantB(w.hub)
    client = await b.connect()
    for phase in ("before", "creates", "after"):
        for frame_type, row in MATRIX.items():
            for probe in getattr(row, phase):
                await probe_once(client, w, frame_type, probe)
    assert [f for f in client.inbox if leaks(f, w)] == []  # B's own stream events only
    # A's resume token names no session of B's ana: closed before any welcome
    headers = {"Authorization": f"Bearer {b.token()}"}
    resume = w.ana.welcome["content"]["resume_token"]
    async with websockets.connect(f"{w.hub.url}?resume={resume}", additional_headers=headers,
                                  open_timeout=20) as stolen:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(stolen.recv(), 15)
    assert closed.value.rcvd.code == 4403
    await client.close()
    assert await a_views(w) == a_before


# -- the HTTP matrix ----------------------------------------------------------------------------
HttpProbe = Callable[[World, "HttpB"], Awaitable[None]]


@dataclass
class HttpB(TenantB):
    """Tenant B with its users' inboxes open (what B's notifier sends arrives there)."""

    ana: Client | None = None
    ben: Client | None = None
    sent: list[str] = field(default_factory=list)  # notification ids B's notifier got back

    async def open_inboxes(self) -> None:
        self.ana, self.ben = await self.connect("ana"), await self.connect("ben")
        for user, client in (("ana", self.ana), ("ben", self.ben)):
            assert (await client.ask("subscribe", {"topic": f"user:{user}"}))["seq"] == 0


def http_routes(core: GatewayCore) -> set[tuple[str, str]]:
    return {(method, route.path) for route in HttpApi(core).routes()
            for method in route.methods or () if method != "HEAD"}


async def search(w: World, b: HttpB) -> None:
    for params in ({"q": w.word}, {"q": w.word, "room": ROOM}):
        found = await w.http("GET", "/v1/search", b.token(), params=params)
        assert (found.status_code, found.json()) == (200, {"hits": []}), params


async def upload_b(w: World, b: HttpB) -> None:
    stored = await upload(w, b.token(), png() + b"B")
    assert stored.status_code == 201, stored.text
    mine = stored.json()["attachment_id"]
    assert mine != w.attachment
    back = await w.http("GET", f"/v1/attachments/{mine}", b.token())
    assert (back.status_code, back.content) == (200, png() + b"B")


async def download(w: World, b: HttpB) -> None:
    """A's uploader's very user id, and an admin, in tenant B: 404 as for any unknown id."""
    for token in (b.token(), b.token("root", scopes="admin")):
        found = await w.http("GET", f"/v1/attachments/{w.attachment}", token)
        assert (found.status_code, found.json()["error"]["code"]) == (404, "not_found")


async def audit(w: World, b: HttpB) -> None:
    admin = b.token("root", scopes="admin")
    whole = await w.http("GET", "/v1/audit", admin)
    assert whole.status_code == 200, whole.text
    entries = whole.json()["entries"]
    assert {e["id"] for e in entries} & w.audit_ids == set()
    assert [e for e in entries if e["room_id"] == ROOM or e["actor"] == "ben"] == []
    for params in ({"room": ROOM}, {"actor": "ben"}, {"action": "room.create"}):
        found = await w.http("GET", "/v1/audit", admin, params=params)
        assert found.json()["entries"] == [], params


async def notify_one(w: World, b: HttpB) -> None:
    """To A's user ids, even with A's Idempotency-Key: new notifications, in B's inboxes."""
    svc = b.token("svc", scopes="notify:send")
    one = await notify(w, svc, {"user_id": "ana", "title": "B note"}, key=w.note_key)
    assert one.status_code == 202, one.text
    assert one.json()["id"] != w.notification
    both = await notify(w, svc, {"user_ids": ["ana", "ben"], "title": "B note to both"})
    assert both.status_code == 202, both.text
    b.sent += [one.json()["id"], *both.json()["ids"]]


async def notify_bulk(w: World, b: HttpB) -> None:
    """A's Idempotency-Key names, in B, only what B itself sent with it (``notify_one``)."""
    answer = await w.http("POST", "/v1/notifications/bulk", b.token("svc", scopes="notify:send"),
                          json={"notifications": [{"user_id": "ben", "title": "B bulk"}, {
                              "user_id": "ana", "title": "B note", "idempotency_key": w.note_key}]})
    assert answer.status_code == 202, answer.text
    new, again = answer.json()["accepted"]
    assert new["id"] not in (w.notification, *b.sent)
    assert again["id"] == b.sent[0]
    b.sent.append(new["id"])


async def notification_status(w: World, b: HttpB) -> None:
    for token in (b.token("svc", scopes="notify:send"), b.token("root", scopes="admin")):
        found = await w.http("GET", f"/v1/notifications/{w.notification}", token)
        assert (found.status_code, found.json()["error"]["code"]) == (404, "not_found")


async def devices_list(w: World, b: HttpB) -> None:
    for token, params in ((b.token(), {}),
                          (b.token("svc", scopes="notify:send"), {"user_id": "ana"})):
        found = await w.http("GET", "/v1/devices", token, params=params)
        assert (found.status_code, found.json()) == (200, {"devices": []})


async def devices_register(w: World, b: HttpB) -> None:
    """This hub has no email provider, so the route refuses before storage; what it would
    then run (the upsert keyed by tenant, kind and address) must leave A's device A's."""
    answer = await w.http("POST", "/v1/devices", b.token(),
                          json={"kind": "email", "address": w.device})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_request")
    pool = await asyncpg.create_pool(w.hub.settings.postgres_url, min_size=1, max_size=1)
    try:
        assert await notify_targets.register(pool, b.tenant, "ana", {
            "kind": "email", "address": w.device, "app": "default", "data": {}}, 10)
        assert [d["address"] for d in await notify_targets.listing(pool, w.hub.tenant, "ana")
                ] == [w.device]
        assert await notify_targets.remove(pool, b.tenant, "ana", "email", w.device)
    finally:
        await pool.close()


async def devices_remove(w: World, b: HttpB) -> None:
    for token, body in ((b.token(), {}),
                        (b.token("svc", scopes="notify:send"), {"user_id": "ana"})):
        gone = await w.http("DELETE", "/v1/devices", token,
                            json={"kind": "email", "address": w.device, **body})
        assert gone.status_code == 404, gone.text
    kept = (await w.http("GET", "/v1/devices", w.ana_token)).json()["devices"]
    assert [d["address"] for d in kept] == [w.device]


def hub_wide(path: str) -> HttpProbe:
    """A route whose answer is the hub's (the VAPID public key or its absence, the API's
    description): B gets exactly what A gets, and nothing of A's."""
    async def same_for_every_tenant(w: World, b: HttpB) -> None:
        mine = await w.http("GET", path, b.token())
        theirs = await w.http("GET", path, w.ana_token)
        assert (mine.status_code, mine.json()) == (theirs.status_code, theirs.json())
        assert leaks(mine.json(), w) == []

    return same_for_every_tenant


async def recommend(w: World, b: HttpB) -> None:
    """B has listened to nothing: no track of A's, from A's party, playlist or user."""
    asks = [(b.token(), {}), (b.token(), {"context": {"party": PARTY}}),
            (b.token(), {"context": {"playlist": PLAYLIST}}),
            (b.token("svc", scopes="recommend"), {"user_id": "ben"})]
    for token, body in asks:
        answer = await w.http("POST", "/v1/recommendations", token, json=body)
        assert (answer.status_code, answer.json()["tracks"]) == (200, []), body


async def revoke(w: World, b: HttpB) -> None:
    """B's admin revoking 'ana' (and A's ana's very token id) revokes B's ana only."""
    admin = b.token("root", scopes="admin")
    claims = jwt.decode(w.ana_token, options={"verify_signature": False})
    for body in ({"user_id": "ana"},
                 {"token_id": claims["jti"], "expires_at": claims["exp"]}):
        answer = await w.http("POST", "/v1/tokens/revoke", admin, json=body)
        assert answer.status_code == 200, answer.text
    assert b.ana is not None
    assert await b.ana.closed_with() == 4410  # B's own ana: revoked
    await revocations_reached(w, w.ana.welcome["content"]["gateway"])
    assert (await w.ana.ask("ping"))["server_time_ms"] > 0  # A's ana: still connected
    again = await Client.connect(w.hub.url, w.ana_token)  # and her token still opens one
    assert (await w.http("GET", "/v1/devices", w.ana_token)).status_code == 200
    await again.close()


async def maintenance(w: World, b: HttpB) -> None:
    """B's admin announces to B's sockets only: B's ben gets it; A's ana, asked a ping after
    that (every replica hears the announcement at once), has none."""
    answer = await w.http("POST", "/v1/admin/maintenance", b.token("root", scopes="admin"),
                          json={"message": "B's window", "at": "now"})
    assert answer.status_code == 202, answer.text
    assert b.ben is not None
    await b.ben.expect("system.maintenance", has={"message": "B's window"})
    await w.ana.ask("ping")
    assert [f for f in w.ana.inbox if f["type"] == "system.maintenance"] == []


async def analytics(w: World, b: HttpB) -> None:
    """B's admin reads B's figures: none of A's rooms, parties, playlists or tracks."""
    answer = await w.http("GET", "/v1/admin/analytics", b.token("root", scopes="admin"))
    assert answer.status_code == 200, answer.text
    for name in (ROOM, PARTY, PLAYLIST, *w.tracks):
        assert name not in answer.text


HTTP_MATRIX: dict[tuple[str, str], tuple[str, HttpProbe]] = {
    ("GET", "/v1/search"): ("200, no hits", search),
    ("POST", "/v1/attachments"): ("201, B's own new id", upload_b),
    ("GET", "/v1/attachments/{attachment_id}"): ("404 not_found", download),
    ("GET", "/v1/audit"): ("200, none of A's rows", audit),
    ("POST", "/v1/notifications"): ("202, new ids in B's inboxes", notify_one),
    ("POST", "/v1/notifications/bulk"): ("202, a new id in B's inbox", notify_bulk),
    ("GET", "/v1/notifications/{notification_id}"): ("404 not_found", notification_status),
    ("GET", "/v1/devices"): ("200, no devices", devices_list),
    ("POST", "/v1/devices"): ("400 (no provider); the upsert keeps A's", devices_register),
    ("DELETE", "/v1/devices"): ("404 not_found", devices_remove),
    ("GET", "/v1/devices/webpush-key"): ("the hub's, as for A",
                                         hub_wide("/v1/devices/webpush-key")),
    ("GET", "/v1/openapi.json"): ("the hub's, as for A (public)", hub_wide("/v1/openapi.json")),
    ("POST", "/v1/recommendations"): ("200, no tracks", recommend),
    ("POST", "/v1/admin/maintenance"): ("202, to B's sockets only", maintenance),
    ("GET", "/v1/admin/analytics"): ("200, none of A's entities", analytics),
    ("POST", "/v1/tokens/revoke"): ("200, B's users only", revoke),  # last: closes B's ana
}


async def test_b_using_a_ids_gets_nothing_of_a_through_every_http_route(world: World) -> None:
    """Every route, with B's user, notifier and admin tokens naming A's ids; what B's
    notifier sends lands in B's inboxes (awaited there), never in A's."""
    w = world
    b = HttpB(w.hub)
    await b.open_inboxes()
    for _, probe in HTTP_MATRIX.values():
        if probe is revoke:  # B's inboxes have all B sent before B's ana is revoked
            await delivered_to_b_only(w, b)
        await probe(w, b)
    assert b.ben is not None
    await b.ben.close()


async def delivered_to_b_only(w: World, b: HttpB) -> None:
    """Each notification B's notifier sent arrives in the inbox of B's user it names (awaited
    on B's socket), and none is in A's inboxes or visible to A's notifier."""
    assert b.ana is not None
    assert b.ben is not None
    svc, inboxes = b.token("svc", scopes="notify:send"), {"ana": b.ana, "ben": b.ben}
    for ident in b.sent:
        user = (await w.http("GET", f"/v1/notifications/{ident}", svc)).json()["user_id"]
        frame = await seen(inboxes[user], "notification", f"user:{user}", id=ident)
        assert leaks(frame, w) == [], frame
    for client in (w.ana, w.ben):
        listed = await client.ask("notification.list", {"limit": 100})
        assert {n["id"] for n in listed["items"]} & set(b.sent) == set()
    a_svc = w.hub.token("svc", scopes="notify:send")
    for ident in b.sent:
        found = await w.http("GET", f"/v1/notifications/{ident}", a_svc)
        assert found.status_code == 404, ident


# -- live events --------------------------------------------------------------------------------
async def on_gateways(connect: Callable[[], Awaitable[Client]], gateways: set[str],
                      have: Client | None = None) -> list[Client]:
    """Sockets on every one of ``gateways`` (replica ids): the kernel spreads new
    connections over the replicas, so connect until each is covered (a leak inside one
    replica's fan-out, or its copy of a list, only shows to a socket there)."""
    kept = [] if have is None else [have]
    for _ in range(24):
        missing = gateways - {c.welcome["content"]["gateway"] for c in kept}
        if not missing:
            return kept
        client = await connect()
        if client.welcome["content"]["gateway"] in missing:
            kept.append(client)
        else:
            await client.close()
    raise AssertionError(f"no socket reached gateways {missing}")


async def revocations_reached(w: World, gateway: str) -> None:
    """Once this returns, replica ``gateway`` has reloaded the revocation list with all that
    was revoked before the call (and closed what it covers): a canary user, revoked straight
    in Redis (so no replica has it in memory), has its socket there closed at that reload."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    (canary,) = await on_gateways(
        lambda: Client.connect(w.hub.url, w.hub.token("canary", tenant=tenant)), {gateway})
    redis = aioredis.from_url(w.hub.settings.redis_url)
    try:
        await Revocations(redis).revoke_user(tenant, "canary")
    finally:
        await redis.aclose()
    assert await canary.closed_with() == 4410


async def test_b_sockets_on_the_same_topic_names_hear_nothing_while_a_publishes(
        world: World) -> None:
    """B follows room, party, playlist, poll and user topics named as A's, from every
    replica A is on. A publishes on each (its own sockets receive it), then B publishes one
    event on each: Redis hands a replica's one subscriber its messages in publish order, so
    anything of A's that could reach a B socket would arrive before B's own event. B gets
    exactly its own (seq 1 of its own streams); A likewise gets nothing of B's."""
    w = world
    b = TenantB(w.hub)
    bw = f"zebra{uuid.uuid4().hex[:8]}"  # in B's texts: what A must never get
    first = await b.connect()
    for frame_type, row in MATRIX.items():  # B's own room, party, playlist, poll of A's ids
        for probe in row.creates:
            await probe_once(first, w, frame_type, probe)
    a_gateways = {c.welcome["content"]["gateway"] for c in (w.ana, w.ben)}
    listeners = await on_gateways(b.connect, a_gateways, first)
    for client in listeners:
        for name in (ROOM_TOPIC, PARTY_TOPIC, PLAYLIST_TOPIC, POLL_TOPIC, "user:ana"):
            if client is not first or name == "user:ana":
                await client.ask("subscribe", {"topic": name})

    await a_publishes(w)
    svc = b.token("svc", scopes="notify:send")
    await first.ask("chat.send", {"room": ROOM, "text": f"{bw} live", "client_msg_id": "b-live"})
    await first.ask("party.control", {"party": PARTY, "action": "pause"})
    insert = {"index": 0, "track": f"{bw}-track", "item_id": f"{bw}-item"}
    await first.ask("playlist.op", {"playlist": PLAYLIST, "base_version": 0, "client_id": "b",
                                    "client_seq": 1, "op": {"insert": insert}})
    await first.ask("poll.vote", {"poll": POLL, "option": 0})
    mine = await notify(w, svc, {"user_id": "ana", "template": "playlist.song_added",
                                 "params": {"friend": "Bo", "playlist": "B list", "count": 1}})
    assert mine.status_code == 202, mine.text
    barrier = [("chat.message", ROOM_TOPIC), ("party.state", PARTY_TOPIC),
               ("playlist.op", PLAYLIST_TOPIC), ("poll.counts", POLL_TOPIC),
               ("notification", "user:ana")]
    for client in listeners:
        got = [await seen(client, frame_type, name) for frame_type, name in barrier]
        assert [f["seq"] for f in got] == [1] * len(barrier), got  # B's own streams
        # rendered in B's ana's locale (none), not A's ana's (fr)
        assert got[-1]["content"]["title"] == "New song added"
        frames = got + client.inbox
        assert [f for f in frames if leaks(f, w, extra=('"ben"', '"dee"'))] == []
        others = [f for f in client.inbox if f.get("topic")]
        assert [f for f in others if not (f["type"].startswith("presence.")
                                          and f["content"]["user"] == "ana"
                                          and f["content"]["name"] == B_NAME)] == [], others
    # A's side of the same wall: A's ana's next notification comes after B's was delivered
    after = await notify(w, w.hub.token("svc", scopes="notify:send"),
                         {"user_id": "ana", "title": f"{w.word} after B"})
    await seen(w.ana, "notification", "user:ana", id=after.json()["id"])
    b_marks = (bw, B_NAME, mine.json()["id"], "New song added")
    assert [f for f in w.ana.inbox if any(m in json.dumps(f) for m in b_marks)] == []
    listed = await w.ana.ask("notification.list", {"limit": 100})
    assert mine.json()["id"] not in {n["id"] for n in listed["items"]}
    for client in listeners:
        await client.close()


async def a_publishes(w: World) -> None:
    """A's users make an event of every kind on each topic, each awaited at A's ana (so it
    has been published before B's barrier is)."""
    ana, ben, word = w.ana, w.ben, w.word
    sent = await ben.ask("chat.send", {"room": ROOM, "text": f"{word} live",
                                       "client_msg_id": "live"})
    await seen(ana, "chat.message", ROOM_TOPIC, message_id=sent["message_id"])
    await ben.ask("chat.typing", {"room": ROOM, "typing": True})
    await seen(ana, "chat.typing", ROOM_TOPIC, user="ben", typing=True)
    dee = await Client.connect(w.hub.url, w.hub.token("dee"))
    await dee.ask("room.join", {"room": ROOM})
    await seen(ana, "presence.join", ROOM_TOPIC, user="dee")
    await ben.ask("party.control", {"party": PARTY, "action": "pause"})
    await seen(ana, "party.state", PARTY_TOPIC, by="ben", action="pause")
    queued = await ben.ask("party.queue", {"party": PARTY, "op": "add", "track": f"{word}-live",
                                           "item_id": f"{word}-qlive"})
    await seen(ana, "party.queue", PARTY_TOPIC, queue_version=queued["queue_version"])
    done = await ben.ask("playlist.op", {"playlist": PLAYLIST, "base_version": 0,
                                         "client_id": "ben", "client_seq": 1, "op": {"insert": {
                                             "index": 0, "track": f"{word}-live",
                                             "item_id": f"{word}-ilive"}}})
    await seen(ana, "playlist.op", PLAYLIST_TOPIC, version=done["version"])
    await ben.ask("poll.vote", {"poll": POLL, "option": 1})
    await seen(ana, "poll.counts", POLL_TOPIC, counts=[0, 1])
    note = await notify(w, w.hub.token("svc", scopes="notify:send"),
                        {"user_id": "ana", "title": f"{word} live note"})
    await seen(ana, "notification", "user:ana", id=note.json()["id"])
    await dee.close()


# -- tenant names that extend one another -------------------------------------------------------
async def test_a_tenant_named_another_plus_a_suffix_shares_no_revocation_or_rate_limit(
        world: World) -> None:
    """Keys joining tenant and user (or token id) with ':' would make tenant 'acme' with
    user 'eu:bob' the same key as tenant 'acme:eu' with user 'bob': acme's admin could
    revoke and disconnect bob of acme:eu, and acme's users spend his rate limit."""
    w = world
    parent = f"t{uuid.uuid4().hex[:10]}"
    child = f"{parent}:eu"
    bob_token = w.hub.token("bob", tenant=child)
    bob = await Client.connect(w.hub.url, bob_token)
    claims = jwt.decode(bob_token, options={"verify_signature": False})
    admin = w.hub.token("root", tenant=parent, scopes="admin")
    for body in ({"user_id": "eu:bob"},
                 {"token_id": f"eu:{claims['jti']}", "expires_at": claims["exp"]}):
        answer = await w.http("POST", "/v1/tokens/revoke", admin, json=body)
        assert answer.status_code == 200, answer.text
    await revocations_reached(w, bob.welcome["content"]["gateway"])
    assert (await bob.ask("ping"))["server_time_ms"] > 0
    assert (await w.http("GET", "/v1/devices", bob_token)).status_code == 200
    await bob.close()
    redis = aioredis.from_url(w.hub.settings.redis_url)
    limits = RateLimiter(redis, [("user", "*", 0.001, 1.0)],
                         prefix=f"test:rl:{uuid.uuid4().hex[:8]}", check_timeout_s=30.0)
    try:
        await limits.check("chat.send", parent, "eu:bob", "198.51.100.7")  # its one token
        await limits.check("chat.send", child, "bob", "198.51.100.7")  # bob's own, still full
    finally:
        await redis.aclose()
