"""ChatRoom: one per room. Membership, and the room's message stream (``room:<id>``).

The minimal path of issue 3: create, join, leave, send (durable before the ack, idempotent by
``client_msg_id``), and the read check the gateway makes before serving history from the
``chat_messages`` projection. ``user`` on every message is set by the gateway from the token,
never by the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from actors.entity import Context, Entity, applies, handles
from actors.messages import Event, Message
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound

MAX_TEXT = 4000
REMEMBERED_SENDS = 1000  # client_msg_ids remembered for idempotent resends
VISIBILITIES = ("public", "private")


@dataclass(frozen=True, slots=True)
class Create(Message):
    type: ClassVar[str] = "room.create"
    user: str
    name: str
    visibility: str = "public"
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Join(Message):
    type: ClassVar[str] = "room.join"
    user: str


@dataclass(frozen=True, slots=True)
class Leave(Message):
    type: ClassVar[str] = "room.leave"
    user: str


@dataclass(frozen=True, slots=True)
class Authorize(Message):
    """May ``user`` read this room's stream and history?"""

    type: ClassVar[str] = "room.authorize"
    user: str


@dataclass(frozen=True, slots=True)
class Send(Message):
    type: ClassVar[str] = "chat.send"
    user: str
    text: str
    client_msg_id: str
    reply_to: str | None = None
    attachments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Created(Event):
    name: str
    visibility: str
    owner: str
    invited: list[str]


@dataclass(frozen=True, slots=True)
class Joined(Event):
    user: str


@dataclass(frozen=True, slots=True)
class Left(Event):
    user: str


@dataclass(frozen=True, slots=True)
class Posted(Event):
    projection: ClassVar[str] = "chat_messages"
    message_id: str
    seq: int
    sender: str
    client_msg_id: str
    text: str
    reply_to: str | None
    at_ms: int

    def projected(self, key: tuple[str, str, str]) -> dict[str, Any]:
        return {"tenant": key[0], "room_id": key[2], "seq": self.seq,
                "message_id": self.message_id, "sender": self.sender,
                "client_msg_id": self.client_msg_id, "body": self.text,
                "reply_to": self.reply_to,
                "sent_at": datetime.fromtimestamp(self.at_ms / 1000, UTC)}


def message_view(room: str, message_id: str, sender: str, text: str, seq: int, at_ms: int,
                 reply_to: str | None) -> dict[str, Any]:
    """``chat.message`` content (PROTOCOL.md "Chat"), from the event or a history row."""
    view = {"message_id": message_id, "room": room, "sender": sender, "text": text,
            "attachments": [], "seq": seq,
            "ts": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")}
    if reply_to:
        view["reply_to"] = reply_to
    return view


class ChatRoom(Entity):
    kind = "room"
    messages = (Create, Join, Leave, Authorize, Send)
    events = (Created, Joined, Left, Posted)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        name: str = ""
        visibility: str = ""
        owner: str = ""
        invited: list[str] = field(default_factory=list)
        members: dict[str, None] = field(default_factory=dict)
        seq: int = 0  # last seq of the room:<id> stream
        # "sender\x1fclient_msg_id" -> [message_id, seq], oldest first, bounded
        sends: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return f"room:{self.key[2]}"

    def _require_room(self) -> None:
        if not self.state.owner:
            raise NotFound(f"room {self.key[2]!r} does not exist")

    def _require_member(self, user: str) -> None:
        self._require_room()
        if user not in self.state.members:
            raise Forbidden(f"{user} is not a member of room {self.key[2]!r}")

    @handles(Create)
    def create(self, msg: Create, ctx: Context) -> None:
        if self.state.owner:
            raise Conflict(f"room {self.key[2]!r} already exists")
        if msg.visibility not in VISIBILITIES:
            raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
        if not msg.name.strip() or len(msg.name) > 200:
            raise BadRequest("name must be 1 to 200 characters")
        ctx.emit(Created(msg.name, msg.visibility, msg.user, sorted(set(msg.members))))
        ctx.emit(Joined(msg.user))
        ctx.reply({"room_id": self.key[2]})

    @handles(Join)
    def join(self, msg: Join, ctx: Context) -> None:
        self._require_room()
        state = self.state
        if state.visibility == "private" and msg.user not in state.invited \
                and msg.user not in state.members:
            raise Forbidden(f"room {self.key[2]!r} is private; ask a member for an invite")
        if msg.user not in state.members:
            ctx.emit(Joined(msg.user))
            ctx.publish(self.topic, "presence.join", {"room": self.key[2], "user": msg.user})
        ctx.reply({"room_id": self.key[2], "seq": state.seq})

    @handles(Leave)
    def leave(self, msg: Leave, ctx: Context) -> None:
        self._require_member(msg.user)
        ctx.emit(Left(msg.user))
        ctx.publish(self.topic, "presence.leave", {"room": self.key[2], "user": msg.user})
        ctx.reply({"room_id": self.key[2]})

    @handles(Authorize)
    def authorize(self, msg: Authorize, ctx: Context) -> None:
        self._require_member(msg.user)
        ctx.reply({"room_id": self.key[2], "seq": self.state.seq})

    @handles(Send)
    def send(self, msg: Send, ctx: Context) -> None:
        self._require_member(msg.user)
        if not msg.client_msg_id or len(msg.client_msg_id) > 64:
            raise BadRequest("client_msg_id must be 1 to 64 characters")
        earlier = self.state.sends.get(f"{msg.user}\x1f{msg.client_msg_id}")
        if earlier is not None:  # a resend: same answer, nothing new
            ctx.reply({"message_id": earlier[0], "seq": earlier[1]})
            return
        if not msg.text.strip() and not msg.attachments:
            raise BadRequest("a message needs text or attachments")
        if len(msg.text) > MAX_TEXT:
            raise BadRequest(f"text is {len(msg.text)} characters; the limit is {MAX_TEXT}")
        seq = self.state.seq + 1
        message_id = ctx.new_token(12)
        ctx.emit(Posted(message_id, seq, msg.user, msg.client_msg_id, msg.text, msg.reply_to,
                        ctx.now_ms))
        ctx.publish(self.topic, "chat.message",
                    message_view(self.key[2], message_id, msg.user, msg.text, seq, ctx.now_ms,
                                 msg.reply_to), seq=seq)
        ctx.reply({"message_id": message_id, "seq": seq})

    @applies(Created)
    def _created(self, ev: Created) -> None:
        self.state.name, self.state.visibility = ev.name, ev.visibility
        self.state.owner, self.state.invited = ev.owner, list(ev.invited)

    @applies(Joined)
    def _joined(self, ev: Joined) -> None:
        self.state.members[ev.user] = None

    @applies(Left)
    def _left(self, ev: Left) -> None:
        self.state.members.pop(ev.user, None)

    @applies(Posted)
    def _posted(self, ev: Posted) -> None:
        self.state.seq = ev.seq
        sends = self.state.sends
        sends[f"{ev.sender}\x1f{ev.client_msg_id}"] = [ev.message_id, ev.seq]
        while len(sends) > REMEMBERED_SENDS:
            del sends[next(iter(sends))]
