"""ChatRoom: one per room. Membership and roles, the message stream (``room:<id>``), presence,
typing, receipts and limits. Messages and events are in ``chat_types``.

* Visibility: ``public`` (anyone in the tenant joins), ``private`` (invite only), ``direct``
  (exactly two users; the gateway derives the room id from the pair, so creating it twice
  lands on the same room).
* Every change a client can observe later is a durable event, and each one that goes on the
  stream takes the next ``seq``. Message text is a private field: it goes to the sealed
  ``chat_messages`` projection, never into the append-only log.
* Presence, typing and rate buckets live in memory only (transient state, changed through
  non-durable events): lost on a restart, rebuilt by the gateways' presence refresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.channels import Channel
from actors.entity import Context, Entity, applies, handles, transient
from actors.kinds.chat_types import (
    ROLES,
    Authorize,
    Create,
    Created,
    Delete,
    Deleted,
    Edit,
    Edited,
    Invite,
    Invited,
    Join,
    Joined,
    Kick,
    Leave,
    Left,
    Posted,
    Read,
    ReadUpTo,
    RoleSet,
    Send,
    SetRole,
    Spent,
    Typing,
    TypingState,
    TypingTimer,
    Update,
    Updated,
    iso,
    message_view,
)
from actors.kinds.members import Members
from actors.kinds.presence import PRESENCE_EVENTS, PRESENCE_MESSAGES, Presence
from actors.messages import request_key
from rthub.bucket import TokenBucket
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound

VISIBILITIES = ("public", "private", "direct")
MODERATORS_ONLY = "only the room's owner or a moderator may do this"
REMEMBERED = 1000  # deletions remembered
TYPING_THROTTLE_MS = 2000  # at most one typing event per user per room in this time
TYPING_EXPIRES_MS = 6000
RETENTION_RANGE = (60, 10 * 365 * 86_400)


class ChatRoom(Members, Presence, Entity):
    kind = "room"
    roles = ROLES
    streams = True
    channel = Channel("room", "room", authorize=Authorize, join=Join, leave=Leave,
                      direct=(Invite, Kick, SetRole, Update, Typing, Read), presence=True)
    messages = (Create, Update, Join, Leave, Invite, Kick, SetRole, Authorize, Send, Edit,
                Delete, Typing, Read, TypingTimer, *PRESENCE_MESSAGES)
    events = (Created, Updated, Joined, Left, Invited, RoleSet, Posted, Edited, Deleted,
              ReadUpTo, TypingState, Spent, *PRESENCE_EVENTS)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        name: str = ""
        visibility: str = ""
        owner: str = ""
        search: bool = True
        retention_s: int | None = None
        invited: list[str] = field(default_factory=list)
        members: dict[str, str] = field(default_factory=dict)  # user -> role
        seq: int = 0  # last seq of the room:<id> stream
        reads: dict[str, int] = field(default_factory=dict)  # user -> last message seq read
        # "sender\x1fclient_msg_id" -> the send's ack, oldest first, bounded (Entity.remember)
        replies: dict[str, dict[str, Any]] = field(default_factory=dict)
        deleted: dict[str, None] = field(default_factory=dict)  # recent deletions, bounded
        # transient: user -> {"name", "since", "devices": {device: expires_ms}}
        present: dict[str, dict[str, Any]] = transient(dict)
        typing: dict[str, list[Any]] = transient(dict)
        buckets: dict[str, list[float]] = transient(dict)  # user -> [tokens, at_ms]
        occupancy_pending: list[bool] = transient(lambda: [False])

    # -- helpers -------------------------------------------------------------------------------
    @property
    def room_id(self) -> str:
        return self.key[2]

    def _stream(self, ctx: Context, event_type: str, content: dict[str, Any],
                removes: str | None = None) -> int:
        return ctx.stream(event_type, {"room": self.room_id, **content}, removes)

    # -- rooms and membership ------------------------------------------------------------------
    @handles(Create)
    def create(self, msg: Create, ctx: Context) -> None:
        state = self.state
        if msg.visibility not in VISIBILITIES:
            raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
        if state.owner:
            pair = {state.owner, *state.invited}
            if state.visibility == "direct" == msg.visibility and msg.user in pair \
                    and set(msg.members) | {msg.user} == pair:
                if msg.user not in state.members:  # a direct room is created once: rejoin
                    seq = self._stream(ctx, "room.joined", {"user": msg.user})
                    ctx.emit(Joined(msg.user, "member", seq, ctx.now_ms, msg.ip))
                ctx.reply({"room_id": self.room_id, "existing": True})
                return
            raise Conflict(f"room {self.room_id!r} already exists")
        if not msg.name.strip() or len(msg.name) > 200:
            raise BadRequest("name must be 1 to 200 characters")
        _check_retention(msg.retention_s)
        others = sorted(set(msg.members) - {msg.user})
        if msg.visibility == "direct" and len(others) != 1:
            raise BadRequest("a direct room has exactly two members: name the other one")
        ctx.emit(Created(msg.name, msg.visibility, msg.user, others, msg.search,
                         msg.retention_s, ctx.now_ms, msg.ip))
        role = "member" if msg.visibility == "direct" else "owner"
        joining = [(msg.user, role)] + ([(others[0], "member")] if msg.visibility == "direct"
                                        else [])
        for user, user_role in joining:  # the room's founders: before its stream starts
            ctx.emit(Joined(user, user_role, 0, ctx.now_ms, msg.ip))
        ctx.reply({"room_id": self.room_id, "seq": 0})

    @handles(Update)
    def update(self, msg: Update, ctx: Context) -> None:
        role = self._role(msg.user)
        state = self.state
        if role != "owner" and state.visibility != "direct":
            raise Forbidden("only the room's owner may change its settings")
        name = state.name if msg.name is None else msg.name
        if not name.strip() or len(name) > 200:
            raise BadRequest("name must be 1 to 200 characters")
        retention = None if msg.forever else (
            state.retention_s if msg.retention_s is None else msg.retention_s)
        _check_retention(retention)
        search = state.search if msg.search is None else msg.search
        ctx.emit(Updated(msg.user, name, search, retention, state.visibility, state.owner,
                         ctx.now_ms, msg.ip))
        ctx.reply({"room_id": self.room_id, "name": name, "search": search,
                   "retention_s": retention})

    @handles(Join)
    def join(self, msg: Join, ctx: Context) -> None:
        self._require_exists()
        state = self.state
        if msg.user not in state.members:
            allowed = (state.visibility == "public"
                       or msg.user in state.invited or msg.user == state.owner)
            if not allowed:
                what = "a direct room" if state.visibility == "direct" else "private"
                raise Forbidden(f"room {self.room_id!r} is {what}; "
                                + ("only its two members may join" if what != "private"
                                   else "ask a member for an invite"))
            seq_now = self._stream(ctx, "room.joined", {"user": msg.user})
            ctx.emit(Joined(msg.user, "member", seq_now, ctx.now_ms, msg.ip))
        else:
            seq_now = state.seq
        ctx.reply({"room_id": self.room_id, "seq": seq_now, "role":
                   state.members.get(msg.user, "member"), "name": state.name,
                   "visibility": state.visibility})

    @handles(Leave)
    def leave(self, msg: Leave, ctx: Context) -> None:
        self._role(msg.user)
        self._remove(msg.user, msg.user, msg.ip, ctx)
        ctx.reply({"room_id": self.room_id})

    @handles(Kick)
    def kick(self, msg: Kick, ctx: Context) -> None:
        role = self._at_least(msg.user, "moderator", MODERATORS_ONLY)
        target = self.state.members.get(msg.target)
        if target is None:
            raise NotFound(f"{msg.target} is not a member of room {self.room_id!r}")
        if target == "owner" or (target == "moderator" and role != "owner"):
            raise Forbidden(f"a {role} cannot remove a {target}")
        self._remove(msg.target, msg.user, msg.ip, ctx)
        ctx.reply({"room_id": self.room_id, "removed": msg.target})

    def _remove(self, user: str, by: str, ip: str, ctx: Context) -> None:
        """Leave or kick: the member goes, gateways drop the user's sockets from the topic
        when ``room.left`` reaches them, and their presence ends."""
        seq = self._stream(ctx, "room.left", {"user": user, "by": by}, removes=user)
        ctx.emit(Left(user, by, seq, ctx.now_ms, ip))
        self._devices_gone(user, list(self.state.present.get(user, {}).get("devices", {})), ctx)

    @handles(Invite)
    def invite(self, msg: Invite, ctx: Context) -> None:
        self._role(msg.user)
        if self.state.visibility == "direct":
            raise Forbidden("a direct room has exactly two members; start a room instead")
        if not msg.target or len(msg.target) > 200:
            raise BadRequest("'user' to invite must be 1 to 200 characters")
        if msg.target not in self.state.invited and msg.target not in self.state.members:
            ctx.emit(Invited(msg.target, msg.user, ctx.now_ms, msg.ip))
        ctx.reply({"room_id": self.room_id, "invited": msg.target})

    @handles(SetRole)
    def set_role(self, msg: SetRole, ctx: Context) -> None:
        if self._role(msg.user) != "owner":
            raise Forbidden("only the room's owner may change roles")
        if msg.role not in ROLES[1:]:
            raise BadRequest("role must be moderator or member")
        if msg.target not in self.state.members:
            raise NotFound(f"{msg.target} is not a member of room {self.room_id!r}")
        if msg.target == msg.user:
            raise Forbidden("the owner's own role cannot change")
        if self.state.members[msg.target] != msg.role:
            seq = self._stream(ctx, "room.role", {"user": msg.target, "role": msg.role})
            ctx.emit(RoleSet(msg.target, msg.role, msg.user, seq, ctx.now_ms, msg.ip))
        ctx.reply({"room_id": self.room_id, "user": msg.target, "role": msg.role})

    @handles(Authorize)
    def authorize(self, msg: Authorize, ctx: Context) -> None:
        role = self._role(msg.user)
        ctx.reply({"room_id": self.room_id, "seq": self.state.seq, "role": role})

    # -- messages ------------------------------------------------------------------------------
    @handles(Send)
    def send(self, msg: Send, ctx: Context) -> None:
        self._role(msg.user)
        if not msg.client_msg_id or len(msg.client_msg_id) > 64:
            raise BadRequest("client_msg_id must be 1 to 64 characters")
        limits = ctx.settings
        if not msg.text.strip() and not msg.attachments:
            raise BadRequest("a message needs text or attachments")
        if len(msg.text) > limits.chat_max_text:
            raise BadRequest(f"text is {len(msg.text)} characters; the limit is "
                             f"{limits.chat_max_text}")
        if len(msg.attachments) > limits.chat_max_attachments:
            raise BadRequest(f"{len(msg.attachments)} attachments; the limit is "
                             f"{limits.chat_max_attachments}")
        self._spend(msg.user, ctx)
        seq = ctx.next_seq  # the message's view names its own seq
        message_id = ctx.new_token(12)
        attachments = list(dict.fromkeys(msg.attachments))
        ctx.stream("chat.message", message_view(self.room_id, message_id, msg.user, msg.text,
                                                seq, ctx.now_ms, msg.reply_to, attachments))
        ctx.emit(Posted(message_id, seq, msg.user, msg.client_msg_id, msg.reply_to,
                        attachments, self.state.search, ctx.now_ms, msg.text))
        if self.state.typing.get(msg.user, [False, 0, False])[2]:
            self._typing(msg.user, False, 0, ctx)  # sending ends typing
        ctx.reply({"message_id": message_id, "seq": seq})

    def _spend(self, user: str, ctx: Context) -> None:
        """A token bucket per user: CHAT_RATE a second, CHAT_BURST at once."""
        bucket = TokenBucket(ctx.settings.chat_rate, ctx.settings.chat_burst)
        tokens, at_ms = bucket.take(self.state.buckets.get(user), ctx.now_ms,
                                    "sending too fast in this room")
        ctx.emit(Spent(user, tokens, at_ms))

    def _editable(self, user: str, message_id: str, author: str) -> None:
        role = self._role(user)
        if message_id in self.state.deleted:
            raise NotFound(f"message {message_id!r} was deleted")
        if user != author and role == "member":
            raise Forbidden("only the author or a moderator may change this message")

    @handles(Edit)
    def edit(self, msg: Edit, ctx: Context) -> None:
        self._editable(msg.user, msg.message_id, msg.author)
        if not msg.text.strip():
            raise BadRequest("an edit needs text; delete the message instead")
        if len(msg.text) > ctx.settings.chat_max_text:
            raise BadRequest(f"text is {len(msg.text)} characters; the limit is "
                             f"{ctx.settings.chat_max_text}")
        seq = self._stream(ctx, "chat.edited", {"message_id": msg.message_id, "text": msg.text,
                                                "edited_by": msg.user, "ts": iso(ctx.now_ms)})
        ctx.emit(Edited(msg.message_id, seq, msg.user, self.state.search, ctx.now_ms, msg.ip,
                        msg.text))
        ctx.reply({"message_id": msg.message_id, "seq": seq})

    @handles(Delete)
    def delete(self, msg: Delete, ctx: Context) -> None:
        self._editable(msg.user, msg.message_id, msg.author)
        seq = self._stream(ctx, "chat.deleted", {"message_id": msg.message_id,
                                                 "deleted_by": msg.user})
        ctx.emit(Deleted(msg.message_id, seq, msg.user, ctx.now_ms, msg.ip))
        ctx.reply({"message_id": msg.message_id, "seq": seq})

    @handles(Read)
    def read(self, msg: Read, ctx: Context) -> None:
        self._role(msg.user)
        if not 0 < msg.seq <= self.state.seq:
            raise BadRequest(f"seq must be from 1 to the room's current seq {self.state.seq}")
        current = self.state.reads.get(msg.user, 0)
        if msg.seq > current:  # receipts only move forward
            seq = self._stream(ctx, "chat.read", {"user": msg.user, "seq": msg.seq})
            ctx.emit(ReadUpTo(msg.user, msg.seq, seq))
        ctx.reply({"room_id": self.room_id, "read_seq": max(current, msg.seq)})

    # -- typing --------------------------------------------------------------------------------
    @handles(Typing)
    def typing(self, msg: Typing, ctx: Context) -> None:
        self._role(msg.user)
        self._typing(msg.user, msg.typing, ctx.now_ms + TYPING_EXPIRES_MS if msg.typing else 0,
                     ctx)
        if msg.typing:
            ctx.schedule(TYPING_EXPIRES_MS / 1000, TypingTimer(msg.user))
        ctx.reply({})

    @handles(TypingTimer)
    def typing_timer(self, msg: TypingTimer, ctx: Context) -> None:
        entry = self.state.typing.get(msg.user)
        if entry is None:
            return
        wanted, expires = entry[2], entry[3]
        if wanted and expires <= ctx.now_ms:
            wanted, expires = False, 0
        self._typing(msg.user, wanted, expires, ctx, from_timer=True)

    def _typing(self, user: str, wanted: bool, expires_ms: int, ctx: Context,
                from_timer: bool = False) -> None:
        """Show ``wanted`` now if the user's last typing event is 2 s old, else once it is."""
        shown, shown_at, _, _, pending = self.state.typing.get(user, [False, 0, False, 0, False])
        if from_timer:
            pending = False
        if wanted != shown:
            wait_ms = shown_at + TYPING_THROTTLE_MS - ctx.now_ms
            if wait_ms <= 0:
                ctx.publish("chat.typing", {"room": self.room_id, "user": user,
                                            "typing": wanted})
                shown, shown_at = wanted, ctx.now_ms
            elif not pending:
                ctx.schedule(wait_ms / 1000, TypingTimer(user))
                pending = True
        ctx.emit(TypingState(user, [shown, shown_at, wanted, expires_ms, pending]))

    # -- appliers ------------------------------------------------------------------------------
    @applies(Created)
    def _created(self, ev: Created) -> None:
        s = self.state
        s.name, s.visibility, s.owner, s.invited = ev.name, ev.visibility, ev.owner, ev.invited
        s.search, s.retention_s = ev.search, ev.retention_s

    @applies(Updated)
    def _updated(self, ev: Updated) -> None:
        self.state.name, self.state.search = ev.name, ev.search
        self.state.retention_s = ev.retention_s

    @applies(Joined)
    def _joined(self, ev: Joined) -> None:
        self.state.members[ev.user] = ev.role
        self.state.seq = max(self.state.seq, ev.seq)

    @applies(Left)
    def _left(self, ev: Left) -> None:
        self.state.members.pop(ev.user, None)
        if ev.user != ev.by and ev.user in self.state.invited:  # removed: the invite is spent
            self.state.invited.remove(ev.user)
        self.state.seq = ev.seq

    @applies(Invited)
    def _invited(self, ev: Invited) -> None:
        self.state.invited.append(ev.user)

    @applies(RoleSet)
    def _role_set(self, ev: RoleSet) -> None:
        self.state.members[ev.user] = ev.role
        self.state.seq = ev.seq

    @applies(Posted)
    def _posted(self, ev: Posted) -> None:
        self.state.seq = ev.seq
        self.remember(request_key(ev.sender, ev.client_msg_id),
                      {"message_id": ev.message_id, "seq": ev.seq})

    @applies(Edited)
    def _edited(self, ev: Edited) -> None:
        self.state.seq = ev.seq

    @applies(Deleted)
    def _deleted(self, ev: Deleted) -> None:
        self.state.seq = ev.seq
        _remember(self.state.deleted, ev.message_id, None)

    @applies(ReadUpTo)
    def _read_up_to(self, ev: ReadUpTo) -> None:
        self.state.reads[ev.user] = ev.read_seq
        self.state.seq = ev.seq

    @applies(TypingState)
    def _typing_state(self, ev: TypingState) -> None:
        if not ev.state[0] and not ev.state[2] and not ev.state[4]:
            self.state.typing.pop(ev.user, None)
        else:
            self.state.typing[ev.user] = ev.state

    @applies(Spent)
    def _spent(self, ev: Spent) -> None:
        self.state.buckets[ev.user] = [ev.tokens, ev.at_ms]


def _check_retention(retention_s: int | None) -> None:
    low, high = RETENTION_RANGE
    if retention_s is not None and not low <= retention_s <= high:
        raise BadRequest(f"retention_s must be from {low} to {high} seconds (or unset: forever)")


def _remember(bounded: dict[str, Any], key: str, value: Any) -> None:
    bounded[key] = value
    while len(bounded) > REMEMBERED:
        del bounded[next(iter(bounded))]
