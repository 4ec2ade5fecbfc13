"""ChatRoom's messages: what it is asked (PROTOCOL.md "Chat"); its events are in
``chat_events``.

Fields named ``user``, ``ip`` and ``author`` are filled in by the gateway (from the token,
the socket, and the stored message), never by the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.messages import Message, ToMember

ROLES = ("owner", "moderator", "member")


# -- messages from clients (through the gateway) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class Create(Message):
    type: ClassVar[str] = "room.create"
    user: str
    name: str
    visibility: str = "public"
    members: list[str] = field(default_factory=list)
    search: bool = True
    retention_s: int | None = None
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Update(Message):
    type: ClassVar[str] = "room.update"
    user: str
    name: str | None = None
    search: bool | None = None
    retention_s: int | None = None
    forever: bool = False  # set retention back to "keep forever"
    ip: str = ""

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> dict[str, Any]:
        """A client's ``retention_s: null`` means keep forever (absent: unchanged)."""
        if "retention_s" in payload and payload["retention_s"] is None:
            payload = {**payload, "forever": True}
            del payload["retention_s"]
        return payload


@dataclass(frozen=True, slots=True)
class Join(Message):
    type: ClassVar[str] = "room.join"
    user: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Leave(Message):
    type: ClassVar[str] = "room.leave"
    user: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Invite(ToMember):
    type: ClassVar[str] = "room.invite"
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Kick(ToMember):
    type: ClassVar[str] = "room.kick"
    ip: str = ""


@dataclass(frozen=True, slots=True)
class SetRole(ToMember):
    type: ClassVar[str] = "room.role"
    role: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Authorize(Message):
    """May ``user`` read this room's stream and history?"""

    type: ClassVar[str] = "room.authorize"
    user: str


@dataclass(frozen=True, slots=True)
class Send(Message):
    type: ClassVar[str] = "chat.send"
    idempotent: ClassVar[tuple[str, ...]] = ("user", "client_msg_id")
    user: str
    text: str
    client_msg_id: str
    reply_to: str | None = None
    attachments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Edit(Message):
    type: ClassVar[str] = "chat.edit"
    user: str
    message_id: str
    text: str
    author: str  # the stored message's sender (the gateway looked it up)
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Delete(Message):
    type: ClassVar[str] = "chat.delete"
    user: str
    message_id: str
    author: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Typing(Message):
    type: ClassVar[str] = "chat.typing"
    user: str
    typing: bool


@dataclass(frozen=True, slots=True)
class Read(Message):
    type: ClassVar[str] = "chat.read"
    user: str
    seq: int


# -- the room's own timers ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TypingTimer(Message):
    """Timer: publish a throttled typing change, or expire a typing state."""

    type: ClassVar[str] = "chat.typing_timer"
    user: str
