"""The context of one handler call: the effects it records (events, a reply, broadcasts,
timers, service calls), which the runtime carries out once the handler returned. A test
reads them straight off it."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from actors.channels import PREFIXES
from actors.messages import Event, Message
from rthub.config import Settings

EntityKey = tuple[str, str, str]
"""(tenant, kind, entity_id): what placement hashes and what storage keys rows by."""


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
        kind = self.key[1]
        return f"{PREFIXES.get(kind, kind)}:{self.key[2]}"

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
