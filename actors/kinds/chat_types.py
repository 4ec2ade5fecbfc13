"""ChatRoom's messages (what it is asked) and events (what it records), and the views the
wire shows of them (PROTOCOL.md "Chat").

Fields named ``user``, ``ip`` and ``author`` are filled in by the gateway (from the token,
the socket, and the stored message), never by the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from actors.kinds.times import iso
from actors.messages import Event, Message

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
class Invite(Message):
    type: ClassVar[str] = "room.invite"
    wire: ClassVar[dict[str, str]] = {"user": "target"}  # the member it is about
    user: str
    target: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class Kick(Message):
    type: ClassVar[str] = "room.kick"
    wire: ClassVar[dict[str, str]] = {"user": "target"}  # the member it is about
    user: str
    target: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class SetRole(Message):
    type: ClassVar[str] = "room.role"
    wire: ClassVar[dict[str, str]] = {"user": "target"}  # the member it is about
    user: str
    target: str
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


# -- durable events ------------------------------------------------------------------------------
def _audit(key: tuple[str, str, str], at_ms: int, actor: str, action: str, ip: str,
           **fields: Any) -> tuple[str, dict[str, Any]]:
    return ("audit", {"tenant": key[0], "room_id": key[2], "at_ms": at_ms, "actor": actor,
                      "action": action, "ip": ip, **fields})


@dataclass(frozen=True, slots=True)
class Created(Event):
    name: str
    visibility: str
    owner: str
    invited: list[str]
    search: bool
    retention_s: int | None
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.room", room_row(key, self.name, self.visibility, self.owner, self.search,
                                       self.retention_s, self.at_ms)),
                _audit(key, self.at_ms, self.owner, "room.create", self.ip,
                       details={"name": self.name, "visibility": self.visibility})]


@dataclass(frozen=True, slots=True)
class Updated(Event):
    by: str
    name: str
    search: bool
    retention_s: int | None
    visibility: str
    owner: str
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.room", room_row(key, self.name, self.visibility, self.owner, self.search,
                                       self.retention_s, self.at_ms)),
                _audit(key, self.at_ms, self.by, "room.update", self.ip,
                       details={"name": self.name, "search": self.search,
                                "retention_s": self.retention_s})]


def room_row(key: tuple[str, str, str], name: str, visibility: str, owner: str, search: bool,
             retention_s: int | None, at_ms: int) -> dict[str, Any]:
    return {"tenant": key[0], "room_id": key[2], "name": name, "visibility": visibility,
            "owner": owner, "search": search, "retention_s": retention_s, "at_ms": at_ms}


@dataclass(frozen=True, slots=True)
class Joined(Event):
    user: str
    role: str
    seq: int
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.member", {"tenant": key[0], "room_id": key[2], "user": self.user,
                                 "role": self.role, "at_ms": self.at_ms}),
                _audit(key, self.at_ms, self.user, "room.join", self.ip)]


@dataclass(frozen=True, slots=True)
class Left(Event):
    user: str
    by: str  # the user themself, or the moderator who removed them
    seq: int
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        action = "room.leave" if self.by == self.user else "room.kick"
        return [("chat.member_gone", {"tenant": key[0], "room_id": key[2], "user": self.user}),
                _audit(key, self.at_ms, self.by, action, self.ip, target=self.user)]


@dataclass(frozen=True, slots=True)
class Invited(Event):
    user: str
    by: str
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [_audit(key, self.at_ms, self.by, "room.invite", self.ip, target=self.user)]


@dataclass(frozen=True, slots=True)
class RoleSet(Event):
    user: str
    role: str
    by: str
    seq: int
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.member", {"tenant": key[0], "room_id": key[2], "user": self.user,
                                 "role": self.role, "at_ms": self.at_ms}),
                _audit(key, self.at_ms, self.by, "room.role", self.ip, target=self.user,
                       details={"role": self.role})]


@dataclass(frozen=True, slots=True)
class Posted(Event):
    private: ClassVar[tuple[str, ...]] = ("text",)
    message_id: str
    seq: int
    sender: str
    client_msg_id: str
    reply_to: str | None
    attachments: list[str]
    search: bool
    at_ms: int
    text: str = ""  # private: sealed in chat_messages, never in the log

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.message", {
            "tenant": key[0], "room_id": key[2], "seq": self.seq, "message_id": self.message_id,
            "sender": self.sender, "client_msg_id": self.client_msg_id, "text": self.text,
            "reply_to": self.reply_to, "attachments": self.attachments, "search": self.search,
            "at_ms": self.at_ms})]


@dataclass(frozen=True, slots=True)
class Edited(Event):
    private: ClassVar[tuple[str, ...]] = ("text",)
    message_id: str
    seq: int
    by: str
    search: bool
    at_ms: int
    ip: str = ""
    text: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.edit", {"tenant": key[0], "room_id": key[2],
                               "message_id": self.message_id, "text": self.text,
                               "search": self.search, "at_ms": self.at_ms}),
                _audit(key, self.at_ms, self.by, "chat.edit", self.ip,
                       message_id=self.message_id)]


@dataclass(frozen=True, slots=True)
class Deleted(Event):
    message_id: str
    seq: int
    by: str
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("chat.delete", {"tenant": key[0], "room_id": key[2],
                                 "message_id": self.message_id, "by": self.by,
                                 "at_ms": self.at_ms}),
                _audit(key, self.at_ms, self.by, "chat.delete", self.ip,
                       message_id=self.message_id)]


@dataclass(frozen=True, slots=True)
class ReadUpTo(Event):
    user: str
    read_seq: int
    seq: int


# -- live-only events (never logged) -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TypingState(Event):
    """[shown, shown_at_ms, wanted, expires_ms, timer_pending] of one user."""

    durable: ClassVar[bool] = False
    user: str
    state: list[Any]


@dataclass(frozen=True, slots=True)
class Spent(Event):
    """What is left in ``user``'s send bucket after this message."""

    durable: ClassVar[bool] = False
    user: str
    tokens: float
    at_ms: int


# -- views ---------------------------------------------------------------------------------------
def message_view(room: str, message_id: str, sender: str, text: str, seq: int, at_ms: int,
                 reply_to: str | None, attachments: list[str] | tuple[str, ...] = (),
                 edited_at_ms: int | None = None, deleted: bool = False) -> dict[str, Any]:
    """``chat.message`` content (PROTOCOL.md "Chat"), from the event or a history row."""
    view: dict[str, Any] = {"message_id": message_id, "room": room, "sender": sender,
                            "text": text, "attachments": list(attachments), "seq": seq,
                            "ts": iso(at_ms)}
    if reply_to:
        view["reply_to"] = reply_to
    if edited_at_ms is not None:
        view["edited_at"] = iso(edited_at_ms)
    if deleted:
        view["deleted"] = True
    return view
