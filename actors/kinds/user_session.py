"""UserSession: one per (tenant, user). A user's live connections, what each follows, and the
resume tokens that let a dropped connection come back.

* ``session.connect`` registers a socket and returns a resume token for it. Over
  MAX_WS_CONNECTIONS_PER_USER (counted across every gateway), the oldest connections are named
  in ``evicted`` for their gateways to close with 4409.
* ``session.follow`` / ``session.unfollow`` record the topics a connection follows.
* ``session.disconnect`` keeps the connection *detached* under its resume token, with the last
  position the gateway sent on each topic, for RTHUB_STREAM_RETENTION_S.
* ``session.resume`` with that token (once) restores the topics and positions onto the new
  connection and returns a fresh token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.channels import CHANNELS, TOPIC_MAX, topic_names
from actors.entity import Context, Entity, applies, handles
from actors.messages import Event, Message
from rthub.errors import BadRequest, Forbidden

MAX_TOPICS = 1000  # per connection
MAX_DETACHED = 20  # resumable connections kept per user


def check_topic(topic: str) -> str:
    """A topic of a declared channel: ``room:<id>``, ``user:<id>`` ... (PROTOCOL.md)."""
    prefix, _, ident = topic.partition(":")
    if prefix not in CHANNELS or not ident or len(topic) > TOPIC_MAX:
        raise BadRequest(f"topic must be one of {topic_names()}"
                         f" (at most {TOPIC_MAX} characters), got {topic[:50]!r}")
    return topic


# -- messages ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connect(Message):
    type: ClassVar[str] = "session.connect"
    connection_id: str
    gateway: str
    device: str = ""


@dataclass(frozen=True, slots=True)
class Resume(Message):
    type: ClassVar[str] = "session.resume"
    resume_token: str
    connection_id: str
    gateway: str
    device: str = ""


@dataclass(frozen=True, slots=True)
class Disconnect(Message):
    type: ClassVar[str] = "session.disconnect"
    connection_id: str
    positions: dict[str, list[Any]] = field(default_factory=dict)  # topic -> [epoch, seq]


@dataclass(frozen=True, slots=True)
class Follow(Message):
    type: ClassVar[str] = "session.follow"
    connection_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class Unfollow(Message):
    type: ClassVar[str] = "session.unfollow"
    connection_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class Get(Message):
    type: ClassVar[str] = "session.get"


# -- events --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Started(Event):
    session_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Connected(Event):
    connection_id: str
    gateway: str
    device: str
    resume_token: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Followed(Event):
    connection_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class Unfollowed(Event):
    connection_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    connection_id: str
    positions: dict[str, list[Any]]
    at_ms: int


@dataclass(frozen=True, slots=True)
class Resumed(Event):
    """The detached connection under ``resume_token`` was taken over (the token is spent)
    by ``connection_id``, which replays from ``positions``."""

    resume_token: str
    connection_id: str = ""  # empty in events logged before resumes were idempotent
    positions: dict[str, Any] = field(default_factory=dict)


class UserSession(Entity):
    kind = "session"
    messages = (Connect, Resume, Disconnect, Follow, Unfollow, Get)
    events = (Started, Connected, Followed, Unfollowed, Disconnected, Resumed)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        session_id: str = ""
        created_ms: int = 0
        # connection_id -> [gateway, device, connected_at_ms, resume_token]; oldest first
        connections: dict[str, list[Any]] = field(default_factory=dict)
        # connection_id -> {topic: None}, in follow order
        topics: dict[str, dict[str, None]] = field(default_factory=dict)
        # resume_token -> [detached_at_ms, {topic: [epoch, seq] or None}]; oldest first
        detached: dict[str, list[Any]] = field(default_factory=dict)
        # connection_id -> the positions it resumed from, while it is live (a resend of its
        # resume, after a host died mid-call, gets the same answer)
        resumed: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- handlers --------------------------------------------------------------------------
    @handles(Connect)
    def connect(self, msg: Connect, ctx: Context) -> None:
        ctx.reply(self._open(msg.connection_id, msg.gateway, msg.device, ctx))

    @handles(Resume)
    def resume(self, msg: Resume, ctx: Context) -> None:
        live = self.state.connections.get(msg.connection_id)
        if live is not None and live[0] == msg.gateway:  # a resend: this resume took place
            ctx.reply({"session_id": self.state.session_id, "resume_token": live[3],
                       "evicted": [],
                       "positions": self.state.resumed.get(msg.connection_id, {})})
            return
        for connection_id, (gateway, _, _, token) in self.state.connections.items():
            if hmac.compare_digest(token, msg.resume_token):
                # Its gateway has not seen it drop yet: that gateway closes it (recording its
                # positions), then the new one asks again.
                ctx.reply({"pending": {"connection_id": connection_id, "gateway": gateway}})
                return
        positions = self._take_over(msg.resume_token, msg.connection_id, ctx)
        reply = self._open(msg.connection_id, msg.gateway, msg.device, ctx)
        for topic in positions:
            ctx.emit(Followed(msg.connection_id, topic))
        ctx.reply({**reply, "positions": positions})

    @handles(Disconnect)
    def disconnect(self, msg: Disconnect, ctx: Context) -> None:
        if msg.connection_id in self.state.connections:
            followed = self.state.topics.get(msg.connection_id, {})
            positions = {t: msg.positions.get(t) for t in followed}
            ctx.emit(Disconnected(msg.connection_id, positions, ctx.now_ms))
        ctx.reply({"connections": len(self.state.connections)
                   - (msg.connection_id in self.state.connections)})

    @handles(Follow)
    def follow(self, msg: Follow, ctx: Context) -> None:
        topic = check_topic(msg.topic)
        followed = self._live(msg.connection_id)
        if topic not in followed:
            if len(followed) >= MAX_TOPICS:
                raise BadRequest(f"a connection follows at most {MAX_TOPICS} topics")
            ctx.emit(Followed(msg.connection_id, topic))
        ctx.reply({"topic": topic})

    @handles(Unfollow)
    def unfollow(self, msg: Unfollow, ctx: Context) -> None:
        if msg.topic in self._live(msg.connection_id):
            ctx.emit(Unfollowed(msg.connection_id, msg.topic))
        ctx.reply({"topic": msg.topic})

    @handles(Get)
    def get(self, msg: Get, ctx: Context) -> None:
        state = self.state
        ctx.reply({
            "session_id": state.session_id,
            "connections": [
                {"connection_id": c, "gateway": g, "device": d, "since_ms": t,
                 "topics": list(state.topics.get(c, {}))}
                for c, (g, d, t, _) in state.connections.items()
            ],
            "detached": len(state.detached),
        })

    # -- decisions ---------------------------------------------------------------------------
    def _live(self, connection_id: str) -> dict[str, None]:
        if connection_id not in self.state.connections:
            raise BadRequest(f"connection {connection_id!r} is not open in this session")
        return self.state.topics.get(connection_id, {})

    def _take_over(self, token: str, connection_id: str, ctx: Context
                   ) -> dict[str, list[Any] | None]:
        """Positions of the detached connection under ``token``; spends the token."""
        window_ms = ctx.settings.stream_retention_s * 1000
        for known, (detached_at, positions) in self.state.detached.items():
            if hmac.compare_digest(known, token) and ctx.now_ms - detached_at <= window_ms:
                ctx.emit(Resumed(known, connection_id, dict(positions)))
                return dict(positions)
        raise Forbidden("resume token is unknown, spent or expired; connect without resume")

    def _open(self, connection_id: str, gateway: str, device: str, ctx: Context
              ) -> dict[str, Any]:
        state = self.state
        session_id = state.session_id
        if not session_id:
            session_id = ctx.new_token(12)
            ctx.emit(Started(session_id, ctx.now_ms))
        live = [c for c in state.connections if c != connection_id]
        evicted = live[:max(len(live) + 1 - ctx.settings.max_ws_connections_per_user, 0)]
        for old in evicted:
            ctx.emit(Disconnected(old, dict.fromkeys(state.topics.get(old, {}))
                                  , ctx.now_ms))
        token = ctx.new_token()
        ctx.emit(Connected(connection_id, gateway, device, token, ctx.now_ms))
        return {
            "session_id": session_id,
            "resume_token": token,
            "evicted": [{"connection_id": c, "gateway": state.connections[c][0]}
                        for c in evicted],
        }

    # -- state changes -------------------------------------------------------------------------
    @applies(Started)
    def _started(self, ev: Started) -> None:
        self.state.session_id, self.state.created_ms = ev.session_id, ev.at_ms

    @applies(Connected)
    def _connected(self, ev: Connected) -> None:
        self.state.connections.pop(ev.connection_id, None)  # a re-connect moves to the end
        self.state.connections[ev.connection_id] = [ev.gateway, ev.device, ev.at_ms,
                                                    ev.resume_token]

    @applies(Followed)
    def _followed(self, ev: Followed) -> None:
        self.state.topics.setdefault(ev.connection_id, {})[ev.topic] = None

    @applies(Unfollowed)
    def _unfollowed(self, ev: Unfollowed) -> None:
        self.state.topics.get(ev.connection_id, {}).pop(ev.topic, None)

    @applies(Disconnected)
    def _disconnected(self, ev: Disconnected) -> None:
        entry = self.state.connections.pop(ev.connection_id, None)
        self.state.topics.pop(ev.connection_id, None)
        self.state.resumed.pop(ev.connection_id, None)
        if entry is not None:
            detached = self.state.detached
            detached[entry[3]] = [ev.at_ms, dict(ev.positions)]
            while len(detached) > MAX_DETACHED:
                del detached[next(iter(detached))]

    @applies(Resumed)
    def _resumed(self, ev: Resumed) -> None:
        self.state.detached.pop(ev.resume_token, None)
        if ev.connection_id:
            self.state.resumed[ev.connection_id] = dict(ev.positions)
