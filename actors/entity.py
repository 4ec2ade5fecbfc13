"""The entity contract: what an entity kind writes, and nothing of how it is run.

An entity kind is a plain class. It declares its ``messages`` and ``events``, one handler per
message (``@handles``) and one applier per event (``@applies``). Handlers decide: they read
state, validate, and record effects on the ``Context`` (events to persist, a reply, timers).
Appliers change state and nothing else; they are what replays the durable log on activation.
The runtime (``actors.residency``) applies a handler's events only after the handler returned
without raising, persists them before the reply leaves, and checkpoints the state behind.

A kind that declares a message without a handler, or an event without an applier, fails when
its module is imported, not when the first such message arrives.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import secrets
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

from actors.channels import Channel, register
from actors.messages import Event, Message, field_specs
from rthub.config import Settings
from rthub.errors import BadRequest

EntityKey = tuple[str, str, str]
"""(tenant, kind, entity_id): what placement hashes and what storage keys rows by."""

_HANDLER_FOR = "_rthub_handles"
_APPLIER_FOR = "_rthub_applies"


def handles(message: type[Message]) -> Callable[[Callable], Callable]:
    """Mark a method as the handler of one message type."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, _HANDLER_FOR, message)
        return fn

    return mark


def applies(event: type[Event]) -> Callable[[Callable], Callable]:
    """Mark a method as the state change of one event type."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, _APPLIER_FOR, event)
        return fn

    return mark


class Deactivation(enum.Enum):
    """Why an entity leaves memory (passed to ``on_deactivate``)."""

    IDLE = "idle"  # no message for ENTITY_IDLE_S
    STOPPED = "stopped"  # a handler called ctx.stop()
    SHUTDOWN = "shutdown"  # the host is going away


@dataclasses.dataclass(frozen=True, slots=True)
class Broadcast:
    """An event for a topic's subscribers; ``seq`` set for stream events, None if ephemeral."""

    topic: str
    type: str
    content: dict[str, Any]
    seq: int | None = None
    removes: str | None = None  # a user who loses the topic, on every device, once delivered


@dataclasses.dataclass(slots=True)
class Timer:
    """A message the entity sends itself after ``delay_s``."""

    delay_s: float
    message: Message


@dataclasses.dataclass(slots=True)
class Call:
    """A request to a host service whose answer comes back as a message."""

    service: str
    request: dict[str, Any]
    reply_to: type[Message]
    fields: dict[str, Any]


class Context:
    """Effects of one handler call. The runtime executes them; tests read them directly."""

    __slots__ = ("_state", "_streamed", "broadcasts", "calls", "events", "key", "now_ms",
                 "reply_content", "settings", "stopping", "timers")

    def __init__(self, key: EntityKey, now_ms: int, settings: Settings) -> None:
        self.key = key
        self.now_ms = now_ms
        self.settings = settings
        self._state: Any = None  # the entity's (``Entity.handle`` sets it): its stream's seq
        self._streamed: int | None = None  # the last seq this handler gave out
        self.events: list[Event] = []
        self.reply_content: dict[str, Any] | None = None
        self.timers: list[Timer] = []
        self.broadcasts: list[Broadcast] = []
        self.calls: list[Call] = []
        self.stopping = False

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def entity_id(self) -> str:
        return self.key[2]

    def emit(self, event: Event) -> None:
        """Record a state change: persisted, then applied, before the reply is sent."""
        self.events.append(event)

    def reply(self, content: dict[str, Any]) -> None:
        """The ``ack`` content for the asker (an ask with no reply gets ``{}``)."""
        self.reply_content = content

    @property
    def topic(self) -> str:
        """The entity's own topic (``room:<id>``), whose stream it numbers."""
        return f"{self.key[1]}:{self.key[2]}"

    def publish(self, event_type: str, content: dict[str, Any], topic: str | None = None,
                removes: str | None = None) -> None:
        """Send an ephemeral event (typing, presence) to a topic's subscribers once this
        message's events are durable: live only, never kept for resume."""
        self.broadcasts.append(Broadcast(topic or self.topic, event_type, content, None,
                                         removes))

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next ``stream`` call will give (for content that names it)."""
        return (self._state.seq if self._streamed is None else self._streamed) + 1

    def stream(self, event_type: str, content: dict[str, Any],
               removes: str | None = None) -> int:
        """Add an event to the entity's own stream and return its ``seq``, one past the last
        (the state's ``seq``, or the one this handler gave out before). Record the durable
        event that carries it (its applier sets ``state.seq``): the stream and the log then
        agree after a restart. ``removes``: the user who loses the topic, on every device,
        once this event is delivered (left, removed)."""
        self._streamed = seq = self.next_seq
        self.broadcasts.append(Broadcast(self.topic, event_type, content, seq, removes))
        return seq

    def schedule(self, delay_s: float, message: Message) -> None:
        """Deliver ``message`` to this entity after ``delay_s`` (not durable: lost on restart)."""
        self.timers.append(Timer(delay_s, message))

    def call(self, service: str, request: dict[str, Any], reply_to: type[Message],
             **fields: Any) -> None:
        """Ask a host service (recommendations, say) and get its answer later as the message
        ``reply_to(**fields, result=...)``; the handler never waits on I/O. Not durable: a
        call in flight when the host dies is lost."""
        self.calls.append(Call(service, request, reply_to, fields))

    def stop(self) -> None:
        """Checkpoint and unload this entity once the current message is done."""
        self.stopping = True

    @staticmethod
    def new_token(nbytes: int = 24) -> str:
        """An unguessable URL-safe token (resume tokens, ids)."""
        return secrets.token_urlsafe(nbytes)


class Entity:
    """Base of every entity kind: identity, state, dispatch, snapshot and restore."""

    kind: ClassVar[str]
    State: ClassVar[type]
    messages: ClassVar[tuple[type[Message], ...]] = ()
    events: ClassVar[tuple[type[Event], ...]] = ()
    streams: ClassVar[bool] = False  # numbers a stream on its topic (``ctx.stream``)
    channel: ClassVar[Channel | None] = None  # how clients reach it (``actors.channels``)
    replies_kept: ClassVar[int] = 1000  # answers to idempotent requests kept for resends
    renamed: ClassVar[dict[str, str]] = {}  # state fields renamed since older checkpoints

    _handlers: ClassVar[dict[str, tuple[type[Message], Callable]]]
    _appliers: ClassVar[dict[str, tuple[type[Event], Callable]]]

    __slots__ = ("key", "state")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, tuple[type[Message], Callable]] = {}
        appliers: dict[str, tuple[type[Event], Callable]] = {}
        for _, fn in inspect.getmembers(cls, inspect.isfunction):
            if (message := getattr(fn, _HANDLER_FOR, None)) is not None:
                if message not in cls.messages:
                    raise TypeError(f"{cls.__name__}.{fn.__name__} handles undeclared "
                                    f"{message.__name__}")
                handlers[message.type] = (message, fn)
            if (event := getattr(fn, _APPLIER_FOR, None)) is not None:
                if event not in cls.events:
                    raise TypeError(f"{cls.__name__}.{fn.__name__} applies undeclared "
                                    f"{event.__name__}")
                appliers[event.__name__] = (event, fn)
        for message in cls.messages:
            if message.type not in handlers:
                raise TypeError(f"{cls.__name__} declares {message.__name__} "
                                f"({message.type!r}) but has no @handles for it")
        for event in cls.events:
            if event.__name__ not in appliers:
                raise TypeError(f"{cls.__name__} declares event {event.__name__} "
                                "but has no @applies for it")
        state = getattr(cls, "State", None)
        state_fields = ({f.name for f in dataclasses.fields(state)}
                        if dataclasses.is_dataclass(state) else set())
        for base in cls.__mro__[1:]:  # what the kind's mixins rely on
            for name in base.__dict__.get("state_needs", ()):
                if name not in state_fields:
                    raise TypeError(f"{cls.__name__} mixes in {base.__name__}, whose State "
                                    f"needs {name!r}")
            for name in base.__dict__.get("kind_provides", ()):
                if getattr(cls, name) is getattr(base, name):
                    raise TypeError(f"{cls.__name__} mixes in {base.__name__} but does not "
                                    f"define {name}")
        if cls.streams and "seq" not in state_fields:
            raise TypeError(f"{cls.__name__} streams but its State has no 'seq' (the last "
                            "seq of its topic's stream, set by the appliers)")
        if any(m.idempotent for m in cls.messages) and "replies" not in state_fields:
            raise TypeError(f"{cls.__name__} takes idempotent requests but its State has no "
                            "'replies' (what a resend gets, by key; set by Entity.remember)")
        if cls.channel is not None:
            undeclared = [m.__name__ for m in cls.channel.messages() if m not in cls.messages]
            if undeclared or cls.channel.kind != cls.kind:
                raise TypeError(f"{cls.__name__}'s channel routes {undeclared or 'another kind'}"
                                " that it does not declare")
            register(cls.channel)
        cls._handlers = handlers
        cls._appliers = appliers

    def __init__(self, key: EntityKey, state: Any | None = None) -> None:
        self.key = key
        self.state = self.State() if state is None else state

    # -- lifecycle hooks (override when a kind needs them) -----------------------------
    def on_activate(self, ctx: Context) -> None:
        """Called after restore, before the first message; may schedule timers."""

    def on_deactivate(self, reason: Deactivation) -> None:
        """Called before the entity leaves memory; state is already durable."""

    # -- dispatch ----------------------------------------------------------------------
    @classmethod
    def accepts(cls, message_type: str) -> bool:
        return message_type in cls._handlers

    def handle(self, message_type: str, payload: Any, ctx: Context) -> None:
        """Decode ``payload`` into the declared message and run its handler."""
        entry = self._handlers.get(message_type)
        if entry is None:
            raise BadRequest(f"{self.kind} does not accept {message_type!r}")
        message_cls, fn = entry
        message = payload if isinstance(payload, message_cls) else message_cls.decode(payload)
        if message_cls.idempotent:
            earlier = self.state.replies.get(message.request_key())
            if earlier is not None:  # a resend: the first answer, and nothing runs again
                ctx.reply(earlier)
                return
        ctx._state = self.state
        fn(self, message, ctx)

    def remember(self, key: str, reply: dict[str, Any]) -> None:
        """Keep what a resend of request ``key`` gets (call it from the applier of the event
        the request made, so a restart rebuilds it; the newest ``replies_kept`` stay)."""
        replies = self.state.replies
        replies[key] = reply
        while len(replies) > self.replies_kept:
            del replies[next(iter(replies))]

    def apply(self, event: Event) -> None:
        """Change state by one event (live, and when replaying the log)."""
        self._appliers[type(event).__name__][1](self, event)

    @classmethod
    def decode_event(cls, event_type: str, payload: dict[str, Any]) -> Event:
        return cls._appliers[event_type][0](**payload)

    # -- persistence -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The state as msgpack (a checkpoint).

        Packed from the live fields, not a ``dataclasses.asdict`` deep copy: a room's
        idempotency cache made that copy a visible share of a busy host's time.
        """
        state = self.state
        fields = {name: getattr(state, name) for name, spec in field_specs(type(state)).items()
                  if not spec.metadata.get("transient")}
        return msgpack.packb(fields, use_bin_type=True, default=_nested_dataclass)

    @classmethod
    def restore(cls, key: EntityKey, data: bytes | None) -> Entity:
        """An entity from a checkpoint (or fresh, with no checkpoint)."""
        if data is None:
            return cls(key)
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
        fields = {cls.renamed.get(k, k): v for k, v in fields.items()}
        known = {f.name for f in dataclasses.fields(cls.State) if not f.metadata.get("transient")}
        # A checkpoint from an older version of the kind: fields it no longer has are dropped,
        # fields it did not have yet take their defaults.
        return cls(key, cls.State(**{k: v for k, v in fields.items() if k in known}))


def transient(default_factory: Callable[[], Any]) -> Any:
    """A state field that lives in memory only (typing, presence, rate buckets): never
    checkpointed, empty again after a restart. Change it only through non-durable events."""
    return dataclasses.field(default_factory=default_factory, metadata={"transient": True})


def _nested_dataclass(value: Any) -> Any:
    """msgpack's fallback for a dataclass nested in a state's fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")
