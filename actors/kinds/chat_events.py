"""ChatRoom's events (what it records, and the rows its projections write) and the view the
wire shows of a message (PROTOCOL.md "Chat")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from actors.kinds.times import iso
from actors.messages import Event


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


def _member_row(key: tuple[str, str, str], user: str, role: str, at_ms: int
                ) -> tuple[str, dict[str, Any]]:
    return ("chat.member", {"tenant": key[0], "room_id": key[2], "user": user, "role": role,
                            "at_ms": at_ms})


@dataclass(frozen=True, slots=True)
class Joined(Event):
    user: str
    role: str
    seq: int
    at_ms: int
    ip: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [_member_row(key, self.user, self.role, self.at_ms),
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
        return [_member_row(key, self.user, self.role, self.at_ms),
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
