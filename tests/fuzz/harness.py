"""Fuzzing the gateway's frame path in-process: what the tests and ``benchmarks.fuzz`` share.

One client frame (text or bytes, in either encoding) goes through what a gateway replica
runs for it: the real ``serve.connection.Connection`` (decode, error answers, lanes,
admission), the real router and handlers, and real entity kinds in an ``actors.testing``
sandbox (seeded with a room, a party, a playlist, a poll and a notification, so valid
requests reach deep), with a stand-in Postgres pool. No Ray, Redis or Postgres: thousands of
frames a second. ``check_frame`` asserts, for any input:

* ``protocol.decode`` returns a well-formed envelope or raises ``BadRequest`` / ``TooLarge``
  (``too_large`` exactly when the frame is over the limit);
* the socket answers every request (``ack``, ``error`` or ``time.pong`` with its ``ref``;
  ``pong`` has no answer), every ``error`` carries a PROTOCOL.md code other than
  ``internal`` (what any other exception becomes), and the socket stays open, with nothing
  left in flight;
* what reaches an entity is a typed ``Message`` whose fields check again;
* what an entity answers or publishes encodes in both encodings (one client's data reaches
  clients of the other), what it logs packs and replays, its state checkpoints and restores,
  and what would go to Postgres, Postgres takes (no NUL in text, integers within bigint).

Strings with lone surrogates are not generated as text frames: the socket layer decodes
text frames as strict UTF-8 and closes on invalid ones (1007) before the gateway sees them.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck
from hypothesis import strategies as st

from actors.channels import CHANNELS, GATEWAY_FIELDS
from actors.entity import Entity
from actors.kinds import KINDS
from actors.messages import Message
from actors.testing import Sandbox
from fanout.streams import Position
from rthub import config
from rthub.errors import BadRequest, HubError, TooLarge
from serve import chat, playlists, protocol, topics
from serve.analytics import Analytics
from serve.auth import Identity, TokenVerifier, issue_token, refreshed
from serve.channel_routes import channel_routes
from serve.connection import Connection
from serve.metrics import GatewayMetrics
from serve.router import Router
from serve.system_events import SystemEvents

# PROTOCOL.md "Envelope": the codes an error may carry. ``internal`` is also one, but it is
# what an unexpected exception becomes: a fuzzed input must never get it.
PROTOCOL_CODES = ("bad_request", "unauthorized", "forbidden", "not_found", "conflict",
                  "rate_limited", "too_large", "unavailable", "internal")
EXPECTED_CODES = frozenset(PROTOCOL_CODES) - {"internal"}
ENVELOPE_FIELDS = ("type", "id", "ref", "topic", "seq", "epoch", "content", "timestamp")
CLIENT_FIELDS = frozenset({"type", "id", "topic", "content", "timestamp"})
INT64 = (-(2**63), 2**63 - 1)
ENCODINGS = (protocol.JSON, protocol.MSGPACK)
SETTINGS = config.load({})
MAX_BYTES = SETTINGS.max_frame_bytes

ROUTER = Router(channel_routes(CHANNELS.values()), topics.ROUTES, chat.ROUTES,
                playlists.ROUTES)
"""The routes a gateway replica has (``serve.gateway.GatewayCore`` builds the same)."""

OWNER, MEMBER, OUTSIDER = "alice", "bob", "mallory"
SECRET = "fuzz-secret-" + "x" * 32
VERIFIER = TokenVerifier(SECRET)

# A valid request of every routed type, sent by OWNER to the seeded sandbox (``seed``): each
# gets an ``ack``. A type without one fails tests/fuzz/test_frames.py.
EXAMPLES: dict[str, dict[str, Any]] = {
    "ping": {},
    "pong": {},
    "time.ping": {"t0": 1_700_000_000_000},
    "session.refresh": {"token": issue_token(SECRET, OWNER, tenant="t", ttl_s=86_400)},
    "subscribe": {"topic": "room:r1", "since": {"epoch": "e1", "seq": 0}},
    "unsubscribe": {"topic": "room:r1"},
    "presence.list": {"topic": "room:r1"},
    "room.create": {"room_id": "r2", "name": "Room two", "visibility": "private",
                    "members": [MEMBER]},
    "room.join": {"room": "r1"},
    "room.leave": {"room": "r1"},
    "room.invite": {"room": "r1", "user": "carol"},
    "room.kick": {"room": "r1", "user": MEMBER},
    "room.role": {"room": "r1", "user": MEMBER, "role": "moderator"},
    "room.update": {"room": "r1", "name": "Renamed", "search": True, "retention_s": 3600},
    "chat.typing": {"room": "r1", "typing": True},
    "chat.read": {"room": "r1", "seq": 1},
    "chat.send": {"room": "r1", "text": "hello", "client_msg_id": "c-1"},
    "chat.edit": {"room": "r1", "message_id": "m1", "text": "edited"},
    "chat.delete": {"room": "r1", "message_id": "m1"},
    "chat.history": {"room": "r1", "before_seq": 10, "limit": 20},
    "chat.search": {"query": "hello", "room": "r1", "limit": 10},
    "notification.ack": {"id": "n1", "state": "read"},
    "notification.list": {"state": "new", "limit": 10},
    "notification.prefs": {"category": "general", "channel": "email", "enabled": False},
    "party.create": {"party_id": "p2", "name": "Friday", "mode": "everyone"},
    "party.join": {"party": "p1"},
    "party.leave": {"party": "p1"},
    "party.control": {"party": "p1", "action": "seek", "position_ms": 1000},
    "party.queue": {"party": "p1", "op": "add", "track": {"id": "t2", "title": "Two"}},
    "party.quality": {"party": "p1", "bandwidth_kbps": 2000.0},
    "party.report": {"party": "p1", "position_ms": 1000.0, "at_server_ms": 1_000_000.0},
    "party.host": {"party": "p1", "user": MEMBER},
    "party.kick": {"party": "p1", "user": MEMBER},
    "party.end": {"party": "p1"},
    "playlist.create": {"playlist_id": "pl2", "name": "Mix", "allow_duplicates": True},
    "playlist.open": {"playlist": "pl1"},
    "playlist.op": {"playlist": "pl1", "base_version": 1, "client_id": "c-1", "client_seq": 1,
                    "op": {"insert": {"index": 0, "track": "t2", "item_id": "i2"}}},
    "playlist.share": {"playlist": "pl1", "user": MEMBER, "role": "editor"},
    "playlist.history": {"playlist": "pl1", "from_version": 0},
    "playlist.revert": {"playlist": "pl1", "to_version": 0},
    "playlist.suggest": {"playlist": "pl1", "limit": 5},
    "poll.create": {"poll_id": "q2", "question": "Which?", "options": ["a", "b"]},
    "poll.open": {"poll": "q1"},
    "poll.vote": {"poll": "q1", "option": 1},
    "poll.close": {"poll": "q1"},
}


class FuzzFailure(AssertionError):
    """A property broken by one frame (the message names the frame and what broke)."""


@dataclasses.dataclass(frozen=True)
class FrameCase:
    """One generated client frame: ``label`` says what it was meant to be (a message type,
    or an envelope fuzzing category), for counting."""

    label: str
    data: str | bytes
    encoding: str
    user: str = OWNER


# -- checks on what the hub would write, send or store ----------------------------------------
def storable(value: Any, where: str, top: bool = True) -> None:
    """Raise ``FuzzFailure`` if Postgres would refuse ``value`` as a query argument or a
    column (NUL in text or JSON, an integer past bigint), as asyncpg would (an ``internal``
    error to the client, or a host that cannot persist)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise FuzzFailure(f"{where}: a NUL character, which PostgreSQL text and JSON refuse")
    elif isinstance(value, int) and not isinstance(value, bool):
        if top and not INT64[0] <= value <= INT64[1]:
            raise FuzzFailure(f"{where}: {value} is outside bigint")
    elif isinstance(value, list | tuple):
        for item in value:
            storable(item, where, top)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, where, top=False)
            storable(item, where, top=False)


def wire_safe(envelope: dict[str, Any], where: str) -> None:
    """Raise ``FuzzFailure`` unless ``envelope`` encodes in both encodings."""
    for encoding in ENCODINGS:
        try:
            protocol.encode_bytes(envelope, encoding)
        except Exception as exc:
            raise FuzzFailure(f"{where} cannot be sent to a {encoding} client: {exc!r}") from exc


class FakePool:
    """Stands in for the replica's asyncpg pool: no rows, except the stored message ``m1``
    (OWNER's) and playlist milestones, so edits and reverts go on to the entity; every
    argument is checked as Postgres would check it."""

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        storable(list(args), f"an argument of {' '.join(query.split())[:60]!r}")
        return []

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any] | None:
        storable(list(args), f"an argument of {' '.join(query.split())[:60]!r}")
        if "sender, deleted_at" in query:
            return {"sender": OWNER, "deleted": False} if args[1] == "m1" else None
        if "FROM playlist_snapshots" in query:
            return {"version": 0, "items": "[]"}
        return None

    async def fetchval(self, query: str, *args: Any) -> Any:
        storable(list(args), f"an argument of {' '.join(query.split())[:60]!r}")
        return None

    async def execute(self, query: str, *args: Any) -> str:
        storable(list(args), f"an argument of {' '.join(query.split())[:60]!r}")
        return "OK"


class FakeRecommendations:
    """``actors.recommend.Recommendations``' one call the routes make, checked."""

    async def ask(self, tenant: str, user: str, history: list[str], exclude: list[str],
                  limit: int) -> dict[str, Any]:
        if not (isinstance(limit, int) and 1 <= limit <= 50 and all(
                isinstance(t, str) for t in [*history, *exclude])):
            raise FuzzFailure(f"recommendations asked with {history!r}, {limit!r}")
        return {"tracks": [], "model": "popular", "fallback": True}


class CheckedRef:
    """A sandbox entity handle that checks what reaches the entity and what comes out."""

    def __init__(self, hub: FuzzHub, kind: str, ident: str, tenant: str) -> None:
        self.hub = hub
        self.inner = hub.sandbox.ref(kind, ident, tenant)

    async def ask(self, message: Message | str, content: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        if not isinstance(message, Message):
            raise FuzzFailure(f"an untyped {message!r} reached an entity")
        try:
            type(message).decode(message.encode())
        except HubError as err:
            raise FuzzFailure(f"an ill-typed {message!r} reached an entity: {err}") from err
        runs = len(self.hub.sandbox.runs)
        try:
            return await self.inner.ask(message, content)
        finally:
            for ctx in self.hub.sandbox.runs[runs:]:
                self.hub.check_effects(self.inner.entity, ctx)

    def tell(self, message: Message | str, content: dict[str, Any] | None = None) -> None:
        self.inner.tell(message, content)


class NoLimits:
    """``serve.security.limits.RateLimiter`` switched off (rate limits have tests of their
    own; here every frame should reach its handler)."""

    active = False


class FuzzHub:
    """What ``Connection`` needs of ``GatewayCore`` and what handlers need of a
    ``serve.handlers.Gateway``, over a sandbox; it records anything that is not a
    ``HubError`` on the way."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.settings = SETTINGS
        self.metrics = METRICS
        self.analytics = ANALYTICS  # Connection counts errors and some accepted frames
        self.router = ROUTER
        self.keyring = None
        self.recommendations = FakeRecommendations()
        self.sandbox = sandbox
        self.pool = FakePool()
        self.jobs: deque[Any] = deque()
        self.crashes: list[BaseException] = []
        self.limits = NoLimits()
        self.events = SystemEvents(None, None, "gw-fuzz")  # exports nothing

    # Connection's side
    def spawn(self, job: Any) -> None:
        self.jobs.append(job)

    async def handle(self, conn: Any, frame: dict[str, Any]) -> dict | None:
        try:
            return await self.router.dispatch(self, conn, frame)
        except HubError:
            raise
        except Exception as exc:  # Connection answers it `internal`: the property's failure
            self.crashes.append(exc)
            raise

    def removed(self, conn: Any, topic: str) -> None:
        conn.positions.pop(topic, None)

    def denied(self, conn: Any, kind: str, err: HubError) -> None:
        pass  # the gateway audits refusals; nothing to check here

    def ended(self, conn: Any, was_open: bool) -> None:
        pass

    # the handlers' side
    def ref(self, kind: str, ident: str, tenant: str) -> CheckedRef:
        return CheckedRef(self, kind, ident, tenant)

    async def db(self) -> FakePool:
        return self.pool

    async def follow(self, conn: Any, topic: str, since: tuple[str, int] | None,
                     frame_id: Any, answer: bool = True, record: bool = True) -> Position:
        where = Position("e1", 0, since is not None, [])
        if answer:
            state = {"topic": topic, "epoch": where.epoch, "seq": where.seq,
                     "recovered": where.recovered}
            conn.send(protocol.answer(frame_id, state) if frame_id is not None
                      else {"type": "subscribed", "topic": topic, "content": state})
        conn.positions[topic] = [where.epoch, 0, 0]
        return where

    async def unfollow(self, conn: Any, topic: str) -> None:
        conn.positions.pop(topic, None)

    def reauthorize(self, conn: Any, token: str) -> int:
        conn.identity = refreshed(VERIFIER, conn.identity, token)
        return conn.identity.expires_at

    def replied(self, message_type: str, reply: dict[str, Any]) -> None:
        wire_safe({"type": "ack", "content": reply}, f"the reply to {message_type}")

    def check_effects(self, entity: Entity, ctx: Any) -> None:
        """What one entity turn produced: sendable, storable, replayable."""
        kind = type(entity)
        where = f"{kind.kind} {entity.key[2]!r}"
        if ctx.reply_content is not None:
            wire_safe({"type": "ack", "ref": 1, "content": ctx.reply_content},
                      f"{where}'s reply")
        for b in ctx.broadcasts:
            wire_safe({"type": b.type, "topic": b.topic, "seq": b.seq, "content": b.content},
                      f"{where}'s {b.type} broadcast")
        for event in ctx.events:
            if not event.durable:
                continue
            name = type(event).__name__
            try:
                logged = msgpack.packb(event.logged(), use_bin_type=True)
                kind.decode_event(name, msgpack.unpackb(logged))
            except Exception as exc:
                raise FuzzFailure(f"{where}'s {name} event cannot be logged and replayed: "
                                  f"{exc!r}") from exc
            for table, row in event.projections(entity.key):
                storable(row, f"{where}'s {name} projection into {table}")
        try:
            kind.restore(entity.key, entity.snapshot())
        except Exception as exc:
            raise FuzzFailure(f"{where}'s state cannot be checkpointed and restored: "
                              f"{exc!r}") from exc


METRICS = GatewayMetrics()
ANALYTICS = Analytics(METRICS.analytics, METRICS.delivery_latency.counts)


class Sink:
    """A socket that keeps what the connection writes."""

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.closed: tuple[int, str] | None = None

    def write(self, out: Any) -> None:
        self.out.append(out)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


# -- the seeded world -----------------------------------------------------------------------
_LOOP = asyncio.new_event_loop()


class _Conn:
    """A minimal socket for seeding (``serve.handlers.Socket``)."""

    def __init__(self, user: str) -> None:
        self.id, self.ip, self.positions = f"seed-{user}", "198.51.100.7", {}
        self.identity = Identity(user, "t", frozenset(), user, 0)

    def send(self, envelope: dict[str, Any]) -> None:
        pass

    def confirm(self) -> None:
        pass


def seed() -> FuzzHub:
    """A hub whose sandbox holds what EXAMPLES name: room r1 (OWNER's, MEMBER joined, a
    message sent), party p1 (OWNER hosts, MEMBER joined, a track queued), playlist pl1
    (OWNER's, one item), poll q1 and OWNER's notification n1."""
    hub = FuzzHub(Sandbox(SETTINGS))
    steps = [
        (OWNER, "room.create", {"room_id": "r1", "name": "Room", "visibility": "public"}),
        (MEMBER, "room.join", {"room": "r1"}),
        (OWNER, "chat.send", {"room": "r1", "text": "hello", "client_msg_id": "seed"}),
        (OWNER, "party.create", {"party_id": "p1", "name": "Party", "mode": "everyone"}),
        (MEMBER, "party.join", {"party": "p1"}),
        (OWNER, "party.queue", {"party": "p1", "op": "add", "track": "t1"}),
        (OWNER, "playlist.create", {"playlist_id": "pl1", "name": "List"}),
        (OWNER, "playlist.op", {"playlist": "pl1", "base_version": 0, "client_id": "seed",
                                "client_seq": 1,
                                "op": {"insert": {"index": 0, "track": "t1", "item_id": "i1"}}}),
        (OWNER, "poll.create", {"poll_id": "q1", "question": "Which?", "options": ["a", "b"]}),
    ]
    for user, message_type, content in steps:
        _LOOP.run_until_complete(ROUTER.dispatch(hub, _Conn(user), {
            "type": message_type, "content": content}))
    hub.sandbox.run(hub.sandbox.entity("inbox", OWNER), "inbox.deliver", id="n1",
                    category="general", priority=1, title="Hi", body="there")
    return hub


_WORLD: dict[tuple[str, str, str], bytes] = {}  # the seeded entities' checkpoints


def seeded() -> FuzzHub:
    """A fresh copy of the seeded world (seeded once, then each entity restored from its
    checkpoint, as a host restores it: every frame starts from the same state)."""
    if not _WORLD:
        _WORLD.update({key: entity.snapshot()
                       for key, entity in seed().sandbox.entities.items()})
    hub = FuzzHub(Sandbox(SETTINGS))
    for key, state in _WORLD.items():
        hub.sandbox.entities[key] = KINDS[key[1]].restore(key, state)
    return hub


# -- the property -----------------------------------------------------------------------------
def check_decode(data: str | bytes, encoding: str, max_bytes: int = MAX_BYTES
                 ) -> dict[str, Any] | HubError:
    """``protocol.decode`` on its own: a well-formed envelope, or ``BadRequest`` /
    ``TooLarge`` (this one exactly when the frame is over ``max_bytes``)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode())
    try:
        frame = protocol.decode(data, encoding, max_bytes)
    except (BadRequest, TooLarge) as err:
        if (err.code == "too_large") != (size > max_bytes):
            raise FuzzFailure(f"a {size}-byte frame got {err.code}") from err
        ref = getattr(err, "ref", None)
        if ref is not None and not (isinstance(ref, str | int) and len(str(ref)) <= 64):
            raise FuzzFailure(f"the error would carry ref {ref!r}") from err
        return err
    except Exception as exc:
        raise FuzzFailure(f"protocol.decode raised {exc!r}") from exc
    if size > max_bytes:
        raise FuzzFailure(f"a {size}-byte frame over the {max_bytes}-byte limit was accepted")
    problems = [
        not isinstance(frame, dict) and "not an object",
        not (isinstance(frame.get("type"), str) and protocol._TYPE.match(frame["type"])
             and len(frame["type"]) <= 64) and "a bad type",
        bool(set(frame) - CLIENT_FIELDS) and "an unknown field",
        frame.get("id") is not None and not (
            isinstance(frame["id"], str | int) and not isinstance(frame["id"], bool)
            and len(str(frame["id"])) <= 64) and "a bad id",
        frame.get("topic") is not None and not isinstance(frame["topic"], str) and "a bad topic",
        not isinstance(frame.get("content"), dict) and "content not an object",
    ]
    wrong = [p for p in problems if p]
    if wrong:
        raise FuzzFailure(f"protocol.decode accepted a frame with {wrong[0]}: {frame!r}")
    return frame


def check_frame(case: FrameCase) -> str:
    """The whole property for one frame (see the module's docstring); returns how it ended:
    ``ack``, ``error:<code>`` or ``malformed:<code>``."""
    decoded = check_decode(case.data, case.encoding)
    hub = seeded()
    sink = Sink()
    identity = Identity(case.user, "t", frozenset(), case.user, 0)
    conn = Connection(hub, sink, identity, case.encoding, "c-fuzz", "203.0.113.9")
    conn.opened()
    try:
        conn.received(case.data)
        while hub.jobs:
            task = _LOOP.create_task(hub.jobs.popleft(), context=contextvars.Context())
            _LOOP.run_until_complete(task)
    except FuzzFailure:
        raise
    except Exception as exc:
        raise FuzzFailure(f"the connection raised {exc!r}") from exc
    if hub.crashes:
        crash = hub.crashes[0]
        if isinstance(crash, FuzzFailure):
            raise crash
        where = "".join(traceback.format_exception(crash)[-3:]).strip()
        raise FuzzFailure(f"a handler raised {crash!r} (answered 'internal'):\n{where}"
                          ) from crash
    sent = [out.envelope for out in sink.out]
    for out in sink.out:  # what the socket writes, in its own encoding
        try:
            out.payload(case.encoding)
        except Exception as exc:
            raise FuzzFailure(f"{out.envelope.get('type')} cannot be encoded: {exc!r}") from exc
    errors = [e["content"] for e in sent if e["type"] == "error"]
    for content in errors:
        if content.get("code") not in EXPECTED_CODES or not isinstance(
                content.get("message"), str):
            raise FuzzFailure(f"an error reply {content!r}")
    if sink.closed is not None:
        raise FuzzFailure(f"one frame closed the socket: {sink.closed}")
    if conn.in_flight or conn.paused:
        raise FuzzFailure(f"{conn.in_flight} requests left in flight")
    if isinstance(decoded, HubError):
        if [e.get("code") for e in errors] != [decoded.code] or len(sent) != 1:
            raise FuzzFailure(f"a malformed frame got {sent!r}, not one {decoded.code} error")
        return f"malformed:{decoded.code}"
    frame_id, kind = decoded.get("id"), decoded["type"]
    answers = [e for e in sent if e.get("ref") == frame_id and e["type"] in (
        "ack", "error", "time.pong")]
    if frame_id is not None and kind != "pong" and not answers:
        raise FuzzFailure(f"{kind} with id {frame_id!r} got no answer: {sent!r}")
    if errors:
        return f"error:{errors[-1]['code']}"
    return "ack"


# -- strategies ---------------------------------------------------------------------------------
BOUNDARY_INTS = (0, 1, -1, 2, 63, 64, 100, 101, 1000, 2**31 - 1, 2**31, 2**53 + 1,
                 2**63 - 1, 2**63, 2**64 - 1, -(2**31), -(2**63))
ODD_TEXT = ("", " ", "\x00", "a\x00b", "\n", "\u202e", "\ufeff", "🎵", "é" * 3, "x" * 129,
            "x" * 5000, "room:r1", "party:p1", "user:alice", "user:", ":", "dm-x", "../..",
            "%00", "r1", "p1", "pl1", "q1", "i1", "m1", "n1", "t1", OWNER, MEMBER, OUTSIDER,
            "play", "add", "remove", "move", "vote", "insert", "editor", "owner", "viewer",
            "read", "seen", "archived", "direct", "public", "private", "NaN", "null", "-1")
wire_ints = st.one_of(st.sampled_from(BOUNDARY_INTS), st.integers(-(2**63), 2**64 - 1),
                      st.integers(-5, 200))
texts = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=12),
                  st.text(alphabet="abcdefghij0123456789_.:-", min_size=1, max_size=10))


_STRATEGIES: dict[Any, st.SearchStrategy[Any]] = {}


def _cached(key: Any, build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Strategies are built once (building one per draw was most of the fuzzer's time)."""
    found = _STRATEGIES.get(key)
    if found is None:
        found = _STRATEGIES[key] = build()
    return found


def scalars(binary: bool) -> st.SearchStrategy[Any]:
    """Leaf values a client of that encoding can send (msgpack adds bytes, extension
    types and non-finite floats)."""
    def build() -> st.SearchStrategy[Any]:
        found = [st.none(), st.booleans(), wire_ints, texts,
                 st.floats(allow_nan=binary, allow_infinity=binary)]
        if binary:
            found += [st.binary(max_size=16),
                      st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))]
        return st.one_of(*found)

    return _cached(("scalars", binary), build)


def keys(binary: bool) -> st.SearchStrategy[Any]:
    return _cached(("keys", binary), lambda: st.one_of(texts, st.binary(max_size=6))
                   if binary else texts)


def values(binary: bool, names: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Any value of the encoding: scalars, lists and objects (keyed by ``names`` too)."""
    def build() -> st.SearchStrategy[Any]:
        key = st.one_of(st.sampled_from(names), keys(binary)) if names else keys(binary)
        return st.recursive(scalars(binary), lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=4)),
            max_leaves=10)

    return _cached(("values", binary, names), build)


@dataclasses.dataclass(frozen=True)
class Deep:
    """``leaf`` inside ``depth`` single-item arrays (or ``{"a": ...}`` objects): written by
    ``serialize`` directly, as deep as a client may send (the encoders stop at 255 / 511
    levels, the decoders go deeper)."""

    depth: int
    leaf: Any = 0
    as_dict: bool = False

    def raw(self, encoding: str) -> bytes:
        leaf = serialize(self.leaf, encoding, False)
        assert isinstance(leaf, bytes)
        if encoding == protocol.MSGPACK:
            return (b"\x81\xa1a" if self.as_dict else b"\x91") * self.depth + leaf
        opening, closing = (b'{"a":', b"}") if self.as_dict else (b"[", b"]")
        return opening * self.depth + leaf + closing * self.depth


def _placeholders(value: Any, found: dict[str, Deep]) -> Any:
    """``value`` with each ``Deep`` replaced by a unique string (filled in after encoding)."""
    if isinstance(value, Deep):
        marker = f"\x01deep{len(found)}\x01"
        found[marker] = value
        return marker
    if isinstance(value, list):
        return [_placeholders(v, found) for v in value]
    if isinstance(value, dict):
        return {k: _placeholders(v, found) for k, v in value.items()}
    return value


def serialize(frame: Any, encoding: str, as_text: bool) -> str | bytes:
    """A frame as a socket delivers it: msgpack bytes, or JSON as text or bytes."""
    deep: dict[str, Deep] = {}
    frame = _placeholders(frame, deep)
    pack = ((lambda v: msgpack.packb(v, use_bin_type=True)) if encoding == protocol.MSGPACK
            else orjson.dumps)
    data = pack(frame)
    for marker, value in deep.items():
        data = data.replace(pack(marker), value.raw(encoding))
    return data.decode() if as_text and encoding == protocol.JSON else data


wire = st.tuples(st.sampled_from(ENCODINGS), st.booleans())
"""(encoding, JSON sent as text rather than bytes)."""


def near(value: Any, binary: bool) -> st.SearchStrategy[Any]:
    """Values close to ``value``: its type's edge cases, other types, deep nesting."""
    def build() -> st.SearchStrategy[Any]:
        anything = values(binary)
        deep = st.builds(Deep, st.integers(100, 1100), st.just(value), st.booleans())
        if isinstance(value, bool):
            similar = st.sampled_from([not value, 0, 1, "true", None, []])
        elif isinstance(value, int | float):
            similar = st.one_of(wire_ints, st.floats(allow_nan=binary, allow_infinity=binary),
                                st.sampled_from([str(value), None, True, [value]]))
        elif isinstance(value, str):
            similar = st.one_of(texts, st.sampled_from(
                [value + "\x00", value * 40, value.upper(), f" {value}", [value], None]))
        elif isinstance(value, list):
            similar = st.one_of(st.lists(anything, max_size=6), st.just(value * 30),
                                st.lists(st.sampled_from(value or [""]), max_size=120),
                                st.just([value]))
        elif isinstance(value, dict):
            similar = st.one_of(mutated(value, binary),
                                st.dictionaries(keys(binary), anything, max_size=4))
        else:
            similar = anything
        return st.one_of(similar, similar, anything, deep)

    return _cached(("near", repr(value), binary), build)


EXTRA_FIELDS = (*GATEWAY_FIELDS, "room", "party", "playlist", "poll", "topic", "id", "room_id",
                "party_id", "playlist_id", "poll_id", "author", "forever", "clear")


@st.composite
def _mutate(draw: st.DrawFn, example: dict[str, Any], binary: bool) -> dict[str, Any]:
    names = tuple(example) or ("x",)
    content = dict(example)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("drop", "change", "change", "change", "add")))
        name = draw(st.sampled_from(names))
        if op == "drop":
            content.pop(name, None)
        elif op == "change":
            content[name] = draw(near(example.get(name), binary))
        else:
            extra = draw(st.one_of(st.sampled_from(EXTRA_FIELDS), keys(binary)))
            content[extra] = draw(values(binary))
    return content


def mutated(example: dict[str, Any], binary: bool) -> st.SearchStrategy[dict[str, Any]]:
    """``example`` with one to three fields dropped, changed or added."""
    return _cached(("mutated", repr(example), binary), lambda: _mutate(example, binary))


def contents(message_type: str, binary: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Content for ``message_type``: its example mutated (mostly), or random fields."""
    def build() -> st.SearchStrategy[dict[str, Any]]:
        example = EXAMPLES[message_type]
        names = tuple(example) + GATEWAY_FIELDS
        near_valid = mutated(example, binary)
        return st.one_of(near_valid, near_valid, near_valid, st.dictionaries(
            st.one_of(st.sampled_from(names), keys(binary)), values(binary, names), max_size=6),
            st.just(example))

    return _cached(("contents", message_type, binary), build)


frame_ids = st.one_of(st.none(), st.integers(0, 2**31), st.text(max_size=8))
users = st.sampled_from((OWNER, OWNER, MEMBER, OUTSIDER))


@st.composite
def payload_cases(draw: st.DrawFn, message_type: str) -> FrameCase:
    """A frame of ``message_type`` whose content is random, or its valid example mutated."""
    encoding, as_text = draw(wire)
    content = draw(contents(message_type, encoding == protocol.MSGPACK))
    frame: dict[str, Any] = {"type": message_type, "content": content}
    frame_id = draw(frame_ids)
    if frame_id is not None:
        frame["id"] = frame_id
    if draw(st.integers(0, 9)) == 0:
        frame["topic"] = draw(texts)
    return FrameCase(message_type, serialize(frame, encoding, as_text), encoding, draw(users))


INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80")


@st.composite
def envelope_cases(draw: st.DrawFn) -> FrameCase:
    """Frames fuzzing the envelope and the decoder: raw bytes, random objects, one field of
    a good frame wrong, deep nesting, oversized, invalid UTF-8, truncated or trailing
    bytes."""
    encoding, as_text = draw(wire)
    binary = encoding == protocol.MSGPACK
    kind = draw(st.sampled_from(("raw", "object", "wrong_field", "deep", "oversized",
                                 "invalid_utf8", "truncated")))
    good = {"type": draw(st.sampled_from(sorted(EXAMPLES))), "id": 7, "topic": "room:r1",
            "content": {}, "timestamp": "2026-01-01T00:00:00.000Z"}
    good["content"] = dict(EXAMPLES[good["type"]])
    data: str | bytes
    if kind == "raw":
        if binary or not as_text:
            data = draw(st.binary(max_size=300))
        else:
            data = draw(st.text(max_size=300))
    elif kind == "object":
        frame = draw(st.one_of(
            st.dictionaries(st.one_of(st.sampled_from(ENVELOPE_FIELDS), keys(binary)),
                            values(binary, ENVELOPE_FIELDS), max_size=8),
            values(binary)))
        if isinstance(frame, dict) and draw(st.booleans()):
            frame["type"] = draw(st.one_of(st.sampled_from(sorted(EXAMPLES)), texts))
        data = serialize(frame, encoding, as_text)
    elif kind == "wrong_field":
        frame = dict(good)
        name = draw(st.sampled_from(ENVELOPE_FIELDS))
        if draw(st.integers(0, 5)) == 0:
            frame.pop(name, None)
        else:
            frame[name] = draw(near(good.get(name), binary))
        if binary and draw(st.integers(0, 4)) == 0:  # a bytes key beside the str ones
            frame[draw(st.binary(min_size=1, max_size=6))] = draw(values(binary))
        data = serialize(frame, encoding, as_text)
    elif kind == "deep":
        depth = draw(st.one_of(st.integers(1, 3000), st.sampled_from((
            510, 511, 512, 1022, 1023, 1024, 1025))))
        value = Deep(depth, 0, draw(st.booleans()))
        frame = value if draw(st.integers(0, 3)) == 0 else {**good, "content": {"a": value}}
        data = serialize(frame, encoding, as_text)
    elif kind == "oversized":
        frame = {**good, "content": {"text": ""}}
        base = len(serialize(frame, encoding, False))
        pad = MAX_BYTES - base + draw(st.integers(-40, 400))
        frame["content"]["text"] = draw(st.sampled_from(("x", "é", "🎵"))) * max(pad, 0)
        data = serialize(frame, encoding, as_text)
    elif kind == "invalid_utf8":
        junk = draw(st.lists(st.one_of(st.sampled_from(INVALID_UTF8), st.binary(max_size=3)),
                             min_size=1, max_size=4))
        raw = b"".join(junk)[:31] or b"\xff"
        where = draw(st.sampled_from(("value", "key", "type")))
        data = _with_invalid_utf8(raw, where, binary)
    else:
        data = serialize(good, encoding, False)
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) if draw(st.booleans()) else data[:cut]
        if as_text and not binary:
            data = data.decode(errors="replace")
    user = draw(st.sampled_from((OWNER, MEMBER, OUTSIDER)))
    return FrameCase(f"envelope:{kind}", data, encoding, user)


def _with_invalid_utf8(raw: bytes, where: str, binary: bool) -> bytes:
    """A frame whose string (a value, a key or the type) is ``raw``: not UTF-8."""
    if binary:
        text = bytes([0xA0 | len(raw)]) + raw  # msgpack fixstr header, invalid payload
        pairs = {"type": b"\xa4ping", "content": b"\x81\xa1x" + text}
        if where == "type":
            pairs["type"] = text
        elif where == "key":
            pairs["content"] = b"\x81" + text + b"\x01"
        return b"\x82" + b"".join(msgpack.packb(k) + v for k, v in pairs.items())
    if where == "type":
        return b'{"type":"' + raw + b'","content":{}}'
    if where == "key":
        return b'{"type":"chat.send","content":{"' + raw + b'":1}}'
    return b'{"type":"chat.send","content":{"room":"r1","text":"' + raw + b'"}}'


def routed_types() -> list[str]:
    """Every message type the router has a handler for (a new route is fuzzed at once)."""
    return sorted(ROUTER.handlers)


# Hypothesis settings both runners share: no deadline (a frame may be slow on a busy
# machine), and big generated frames (oversized, deep) are intended.
SETTINGS_KWARGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.large_base_example],
}
