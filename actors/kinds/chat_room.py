"""ChatRoom: one per room. Membership and roles, the message stream (``room:<id>``), presence,
typing, receipts and limits. Messages and events are in ``chat_types``; what members post
(messages, edits, deletions, receipts, typing) is ``chat_messages``'.

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
from actors.kinds.chat_events import (
    Created,
    Deleted,
    Edited,
    Invited,
    Joined,
    Left,
    Posted,
    ReadUpTo,
    RoleSet,
    Spent,
    TypingState,
    Updated,
)
from actors.kinds.chat_messages import Messages
from actors.kinds.chat_types import (
    ROLES,
    Authorize,
    Create,
    Delete,
    Edit,
    Invite,
    Join,
    Kick,
    Leave,
    Read,
    Send,
    SetRole,
    Typing,
    TypingTimer,
    Update,
)
from actors.kinds.members import Members
from actors.kinds.presence import PRESENCE_EVENTS, PRESENCE_MESSAGES, Presence
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound

VISIBILITIES = ("public", "private", "direct")
MODERATORS_ONLY = "only the room's owner or a moderator may do this"
RETENTION_RANGE = (60, 10 * 365 * 86_400)


class ChatRoom(Messages, Members, Presence, Entity):
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



def _check_retention(retention_s: int | None) -> None:
    low, high = RETENTION_RANGE
    if retention_s is not None and not low <= retention_s <= high:
        raise BadRequest(f"retention_s must be from {low} to {high} seconds (or unset: forever)")
