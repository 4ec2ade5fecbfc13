"""ListeningParty's messages and events (PROTOCOL.md "Listening parties").

``user`` is the token's and ``device`` the socket's, both set by the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.kinds.tracks import track_id
from actors.messages import Event, Message, ToMember

MODES = ("host_only", "everyone")
ACTIONS = ("play", "pause", "skip", "seek", "volume_change")


@dataclass(frozen=True, slots=True)
class Create(Message):
    type: ClassVar[str] = "party.create"
    user: str
    name: str
    mode: str = "host_only"
    vote_order: bool = False  # the queue sorted by votes (ties: first added first)


@dataclass(frozen=True, slots=True)
class Join(Message):
    type: ClassVar[str] = "party.join"
    user: str


@dataclass(frozen=True, slots=True)
class Leave(Message):
    type: ClassVar[str] = "party.leave"
    user: str
    device: str = ""  # the socket leaving (its other sockets, if any, must lose the topic)


@dataclass(frozen=True, slots=True)
class Authorize(Message):
    type: ClassVar[str] = "party.authorize"
    user: str


@dataclass(frozen=True, slots=True)
class Control(Message):
    type: ClassVar[str] = "party.control"
    user: str
    action: str
    position_ms: int | None = None
    volume: int | None = None


@dataclass(frozen=True, slots=True)
class QueueOp(Message):
    type: ClassVar[str] = "party.queue"
    user: str
    op: str
    track: Any = None
    item_id: str | None = None
    to_index: int | None = None


@dataclass(frozen=True, slots=True)
class Quality(Message):
    type: ClassVar[str] = "party.quality"
    user: str
    device: str
    bandwidth_kbps: float


@dataclass(frozen=True, slots=True)
class Report(Message):
    """A device's playback position at a server time (its own clock, converted)."""

    type: ClassVar[str] = "party.report"
    user: str
    position_ms: float
    at_server_ms: float
    track: Any = None


@dataclass(frozen=True, slots=True)
class HandOver(ToMember):
    type: ClassVar[str] = "party.host"


@dataclass(frozen=True, slots=True)
class Remove(ToMember):
    type: ClassVar[str] = "party.kick"


@dataclass(frozen=True, slots=True)
class End(Message):
    type: ClassVar[str] = "party.end"
    user: str


@dataclass(frozen=True, slots=True)
class IdleCheck(Message):
    """Timer: end the party if it has stayed empty since ``since_ms`` (the time the last
    present user left). A timer from an earlier leave, with a visit after it, does nothing."""

    type: ClassVar[str] = "party.idle_check"
    since_ms: int


@dataclass(frozen=True, slots=True)
class Recommended(Message):
    """The recommendation service's answer (``ctx.call``) to the request made when the queue
    reached ``queue_version``."""

    type: ClassVar[str] = "party.recommended"
    queue_version: int
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


# -- durable events ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Created(Event):
    name: str
    mode: str
    host: str
    vote_order: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class Joined(Event):
    user: str
    seq: int


@dataclass(frozen=True, slots=True)
class Left(Event):
    user: str
    by: str
    seq: int


@dataclass(frozen=True, slots=True)
class Played(Event):
    """The playback state after a control: at ``at_server_ms`` the track is at ``position_ms``."""

    track: Any
    item_id: str | None
    position_ms: int
    playing: bool
    volume: int
    at_server_ms: int
    by: str
    action: str
    seq: int


@dataclass(frozen=True, slots=True)
class Listened(Event):
    """What a control meant for the track it touched (a listening event: what the
    recommendation models train on; ``storage.listening``)."""

    event: str  # play, skip, seek
    track: Any
    position_ms: int
    by: str
    at_ms: int

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("listen", {"tenant": key[0], "user": self.by, "track": track_id(self.track),
                            "event": self.event, "position_ms": self.position_ms,
                            "context": f"party:{key[2]}", "at_ms": self.at_ms})]


@dataclass(frozen=True, slots=True)
class Queued(Event):
    """The queue after one op (the whole list: small, and simplest to recover from)."""

    queue: list[list[Any]]  # [item_id, track, added_by, votes]
    queue_version: int
    by: str
    op: str
    seq: int


@dataclass(frozen=True, slots=True)
class HostChanged(Event):
    host: str
    seq: int


@dataclass(frozen=True, slots=True)
class Ended(Event):
    by: str
    seq: int


@dataclass(frozen=True, slots=True)
class RecommendationsShown(Event):
    seq: int


# -- live-only -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TierSet(Event):
    durable: ClassVar[bool] = False
    device: str
    tier: int


@dataclass(frozen=True, slots=True)
class WentEmpty(Event):
    """The last present user left at ``at_ms`` (the idle clock starts)."""

    durable: ClassVar[bool] = False
    at_ms: int


@dataclass(frozen=True, slots=True)
class RecommendationsAsked(Event):
    """Recommendations were asked for at ``queue_version`` (only the latest ask is answered)."""

    durable: ClassVar[bool] = False
    queue_version: int
