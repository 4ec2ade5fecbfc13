"""The content of each server event and each ack of PROTOCOL.md, as TypedDicts.

``EVENTS`` maps an event type to its TypedDict, ``ACKS`` a request type to its ack's. Fields
a TypedDict marks required are the ones the hub always sends; the hub may add fields (clients
ignore those they do not know, as the event catalog's upgrade rule says). ``parse`` checks
the required fields and returns the content typed::

    message = parse("chat.message", content)   # a ChatMessage: message["text"] is a str
"""

import logging
from typing import Any, NotRequired, TypedDict, cast


class Welcome(TypedDict):
    session_id: str
    user_id: str
    tenant: str
    server_time_ms: int
    heartbeat_s: float
    resume_token: str
    max_in_flight: NotRequired[int]
    connection_id: NotRequired[str]
    gateway: NotRequired[str]
    resumed: NotRequired[bool]


class Subscribed(TypedDict):
    """``subscribed`` (after a resume, or unprompted on a loss) and the ``subscribe`` ack."""

    topic: str
    epoch: str
    seq: int
    recovered: bool


class ChatMessage(TypedDict):
    message_id: str
    room: str
    sender: str
    text: str
    attachments: list[Any]
    seq: NotRequired[int]
    ts: NotRequired[Any]
    reply_to: NotRequired[str | None]


class ChatEdited(TypedDict):
    room: str
    message_id: str
    text: NotRequired[str]


class ChatDeleted(TypedDict):
    room: str
    message_id: str


class ChatTyping(TypedDict):
    room: str
    user: str
    typing: bool


class ChatRead(TypedDict):
    room: str
    user: str
    seq: int


class Presence(TypedDict):
    """``presence.join`` / ``presence.leave``."""

    user: str
    name: NotRequired[str]


class PresenceOccupancy(TypedDict):
    online: int
    members: NotRequired[int]


class PartyState(TypedDict):
    """At server time ``at_server_ms`` the track is at ``position_ms``."""

    track: Any
    position_ms: int
    playing: bool
    volume: int
    at_server_ms: int
    queue_version: int
    host: NotRequired[str]
    mode: NotRequired[str]
    by: NotRequired[str]
    action: NotRequired[str]
    item_id: NotRequired[str | None]


class PartyQueue(TypedDict):
    queue: list[dict[str, Any]]
    queue_version: int


class PartyRecommendations(TypedDict):
    tracks: list[Any]
    model: NotRequired[str]
    fallback: NotRequired[bool]


class PartyTick(TypedDict, total=False):
    position_ms: int
    at_server_ms: int


class PlaylistOp(TypedDict):
    version: int
    op: dict[str, Any] | None
    author: str
    client_id: NotRequired[str]
    client_seq: NotRequired[int]


class PlaylistShared(TypedDict):
    user: str
    role: str


class Notification(TypedDict):
    id: str
    title: str
    content: str
    priority: int
    category: str | None
    data: dict[str, Any] | None
    ts: Any
    state: NotRequired[str]
    unread: NotRequired[int]
    silent: NotRequired[bool]


class NotificationState(TypedDict):
    id: str
    state: str
    unread: int


class SystemMaintenance(TypedDict):
    message: str
    at: str
    duration_s: NotRequired[int]


class TimePong(TypedDict):
    t0: float
    t1: int
    t2: int


# -- acks ---------------------------------------------------------------------------------
class Followed(TypedDict):
    """Acks that also follow a topic for the socket (``room.create``, ``room.join``...)."""

    topic: NotRequired[str]
    epoch: NotRequired[str]
    seq: NotRequired[int]


class RoomCreated(Followed):
    room_id: str


class ChatSent(TypedDict):
    message_id: str
    seq: int


class ChatHistory(TypedDict):
    messages: list[ChatMessage]
    more: bool


class ChatSearch(TypedDict):
    hits: list[dict[str, Any]]


class PresenceList(TypedDict):
    members: list[dict[str, Any]]


class PartyCreated(Followed):
    party_id: str


class PartyJoined(Followed):
    state: PartyState
    queue: NotRequired[list[dict[str, Any]]]


class PartyQuality(TypedDict):
    bitrate_kbps: int
    changed: NotRequired[bool]


class PartyReport(TypedDict):
    """The party's verdict on a device's position: ``drift_ms`` (None when the device plays
    another track) and, past the tolerance, ``correction``: ``{mode: rate, rate, for_ms}``,
    ``{mode: seek, position_ms, at_server_ms}`` or ``{mode: reload, state}``."""

    drift_ms: float | None
    correction: NotRequired[dict[str, Any]]


class PlaylistCreated(Followed):
    playlist_id: str
    version: int


class PlaylistOpened(Followed):
    version: int
    items: list[dict[str, Any]]
    collaborators: NotRequired[Any]


class PlaylistOpAck(TypedDict):
    version: int
    op: dict[str, Any] | None
    duplicate: NotRequired[bool]
    conflict: NotRequired[str]


class PlaylistHistory(TypedDict):
    ops: list[PlaylistOp]
    more: NotRequired[bool]


class PlaylistSuggest(TypedDict):
    tracks: list[dict[str, Any]]
    model: str
    fallback: bool


class NotificationList(TypedDict):
    items: list[Notification]
    unread: int
    more: NotRequired[bool]


class TokenRefreshed(TypedDict):
    """The ``session.refresh`` ack: the socket now closes at the new token's ``exp``."""

    exp: int


EVENTS: dict[str, type] = {
    "session.welcome": Welcome, "subscribed": Subscribed,
    "chat.message": ChatMessage, "chat.edited": ChatEdited, "chat.deleted": ChatDeleted,
    "chat.typing": ChatTyping, "chat.read": ChatRead,
    "presence.join": Presence, "presence.leave": Presence,
    "presence.occupancy": PresenceOccupancy,
    "party.state": PartyState, "party.queue": PartyQueue,
    "party.recommendations": PartyRecommendations, "party.tick": PartyTick,
    "playlist.op": PlaylistOp, "playlist.shared": PlaylistShared,
    "notification": Notification, "notification.state": NotificationState,
    "system.maintenance": SystemMaintenance, "time.pong": TimePong,
}

ACKS: dict[str, type] = {
    "subscribe": Subscribed, "room.create": RoomCreated, "room.join": Followed,
    "chat.send": ChatSent, "chat.history": ChatHistory, "chat.search": ChatSearch,
    "presence.list": PresenceList, "party.create": PartyCreated, "party.join": PartyJoined,
    "party.quality": PartyQuality, "party.report": PartyReport,
    "playlist.create": PlaylistCreated,
    "playlist.open": PlaylistOpened, "playlist.op": PlaylistOpAck,
    "playlist.history": PlaylistHistory, "playlist.suggest": PlaylistSuggest,
    "notification.list": NotificationList, "time.ping": TimePong,
    "session.refresh": TokenRefreshed,
}


def missing(kind: str, content: dict[str, Any], table: dict[str, type] = EVENTS) -> list[str]:
    """The required fields of ``kind``'s TypedDict that ``content`` lacks (none for a type
    this module does not describe)."""
    schema = table.get(kind)
    if schema is None:
        return []
    return sorted(name for name in schema.__required_keys__ if name not in content)


def parse(kind: str, content: dict[str, Any], table: dict[str, type] = EVENTS) -> Any:
    """``content`` typed as ``kind``'s TypedDict; ``ValueError`` naming missing fields."""
    lacking = missing(kind, content, table)
    if lacking:
        raise ValueError(f"{kind} without {', '.join(lacking)}")
    return cast(Any, content)


def check(kind: Any, content: dict[str, Any], logger: logging.Logger) -> None:
    """Log an event that lacks a field its type promises (delivered all the same: a newer
    hub may have moved on; the warning says where the SDK and the hub disagree)."""
    if isinstance(kind, str) and (lacking := missing(kind, content)):
        logger.warning("%s without %s", kind, ", ".join(lacking))
