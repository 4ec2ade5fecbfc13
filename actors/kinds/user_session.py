"""UserSession: one per (tenant, user). A user's live connections, subscriptions, resume token.

Gateways tell it when a socket opens or closes; it enforces MAX_WS_CONNECTIONS_PER_USER across
every gateway (the oldest connection is named in ``evicted`` for its gateway to close with
4409), remembers the topics the user follows so a resumed socket gets them back, and holds the
resume token that proves a reconnect belongs to this session.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.entity import Context, Entity, applies, handles
from actors.messages import Event, Message
from rthub.errors import BadRequest, Forbidden

TOPIC_KINDS = ("room", "party", "playlist", "user")
MAX_SUBSCRIPTIONS = 1000


def check_topic(topic: str) -> str:
    """``room:<id>``, ``party:<id>``, ``playlist:<id>`` or ``user:<id>`` (PROTOCOL.md)."""
    prefix, _, ident = topic.partition(":")
    if prefix not in TOPIC_KINDS or not ident or len(topic) > 200:
        raise BadRequest(f"topic must be one of {', '.join(k + ':<id>' for k in TOPIC_KINDS)}"
                         f" (at most 200 characters), got {topic[:50]!r}")
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


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    type: ClassVar[str] = "session.subscribe"
    topic: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    type: ClassVar[str] = "session.unsubscribe"
    topic: str


@dataclass(frozen=True, slots=True)
class Get(Message):
    type: ClassVar[str] = "session.get"


# -- events --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Started(Event):
    session_id: str
    resume_token: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Connected(Event):
    connection_id: str
    gateway: str
    device: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Disconnected(Event):
    connection_id: str


@dataclass(frozen=True, slots=True)
class TokenRotated(Event):
    resume_token: str


@dataclass(frozen=True, slots=True)
class Subscribed(Event):
    topic: str


@dataclass(frozen=True, slots=True)
class Unsubscribed(Event):
    topic: str


class UserSession(Entity):
    kind = "session"
    messages = (Connect, Resume, Disconnect, Subscribe, Unsubscribe, Get)
    events = (Started, Connected, Disconnected, TokenRotated, Subscribed, Unsubscribed)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        session_id: str = ""
        resume_token: str = ""
        created_ms: int = 0
        # connection_id -> [gateway, device, connected_at_ms]; insertion order is age order
        connections: dict[str, list[Any]] = field(default_factory=dict)
        # topic -> None, in subscription order (a dict keeps order and dedupes)
        subscriptions: dict[str, None] = field(default_factory=dict)

    # -- handlers --------------------------------------------------------------------------
    @handles(Connect)
    def connect(self, msg: Connect, ctx: Context) -> None:
        self._open(msg.connection_id, msg.gateway, msg.device, ctx)

    @handles(Resume)
    def resume(self, msg: Resume, ctx: Context) -> None:
        token = self.state.resume_token
        if not token or not hmac.compare_digest(token, msg.resume_token):
            raise Forbidden("resume token does not match this session; connect without resume")
        rotated = ctx.new_token()
        ctx.emit(TokenRotated(rotated))
        self._open(msg.connection_id, msg.gateway, msg.device, ctx, token=rotated)

    @handles(Disconnect)
    def disconnect(self, msg: Disconnect, ctx: Context) -> None:
        live = self.state.connections
        if msg.connection_id in live:
            ctx.emit(Disconnected(msg.connection_id))
        ctx.reply({"connections": len(live) - (msg.connection_id in live)})

    @handles(Subscribe)
    def subscribe(self, msg: Subscribe, ctx: Context) -> None:
        topic = check_topic(msg.topic)
        if topic not in self.state.subscriptions:
            if len(self.state.subscriptions) >= MAX_SUBSCRIPTIONS:
                raise BadRequest(f"a session follows at most {MAX_SUBSCRIPTIONS} topics")
            ctx.emit(Subscribed(topic))
        ctx.reply({"topic": topic})

    @handles(Unsubscribe)
    def unsubscribe(self, msg: Unsubscribe, ctx: Context) -> None:
        if msg.topic in self.state.subscriptions:
            ctx.emit(Unsubscribed(msg.topic))
        ctx.reply({"topic": msg.topic})

    @handles(Get)
    def get(self, msg: Get, ctx: Context) -> None:
        ctx.reply(self._view())

    def _open(self, connection_id: str, gateway: str, device: str, ctx: Context,
              token: str | None = None) -> None:
        state = self.state
        session_id, token = state.session_id, token or state.resume_token
        if not session_id:
            session_id, token = ctx.new_token(12), ctx.new_token()
            ctx.emit(Started(session_id, token, ctx.now_ms))
        live = [c for c in state.connections if c != connection_id]
        over = len(live) + 1 - ctx.settings.max_ws_connections_per_user
        evicted = live[:max(over, 0)]
        for old in evicted:
            ctx.emit(Disconnected(old))
        ctx.emit(Connected(connection_id, gateway, device, ctx.now_ms))
        ctx.reply({
            "session_id": session_id,
            "resume_token": token,
            "subscriptions": list(state.subscriptions),
            "evicted": [{"connection_id": c, "gateway": state.connections[c][0]} for c in evicted],
        })

    def _view(self) -> dict[str, Any]:
        state = self.state
        return {
            "session_id": state.session_id,
            "connections": [
                {"connection_id": c, "gateway": g, "device": d, "since_ms": t}
                for c, (g, d, t) in state.connections.items()
            ],
            "subscriptions": list(state.subscriptions),
        }

    # -- state changes ---------------------------------------------------------------------
    @applies(Started)
    def _started(self, ev: Started) -> None:
        self.state.session_id = ev.session_id
        self.state.resume_token = ev.resume_token
        self.state.created_ms = ev.at_ms

    @applies(Connected)
    def _connected(self, ev: Connected) -> None:
        self.state.connections.pop(ev.connection_id, None)  # a re-connect moves to the end
        self.state.connections[ev.connection_id] = [ev.gateway, ev.device, ev.at_ms]

    @applies(Disconnected)
    def _disconnected(self, ev: Disconnected) -> None:
        self.state.connections.pop(ev.connection_id, None)

    @applies(TokenRotated)
    def _rotated(self, ev: TokenRotated) -> None:
        self.state.resume_token = ev.resume_token

    @applies(Subscribed)
    def _subscribed(self, ev: Subscribed) -> None:
        self.state.subscriptions[ev.topic] = None

    @applies(Unsubscribed)
    def _unsubscribed(self, ev: Unsubscribed) -> None:
        self.state.subscriptions.pop(ev.topic, None)
