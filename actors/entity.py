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
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

from actors.channels import Channel, register
from actors.context import Context, EntityKey
from actors.messages import Event, Message, field_specs
from rthub.errors import BadRequest

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
                found = getattr(cls, name, None)
                if found is None or found is base.__dict__.get(name):
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
