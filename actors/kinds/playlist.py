"""Playlist: one per collaboratively edited playlist. The authority of its order.

ShareDB's model: a client op carries the version it was made on; the playlist transforms it
past every op committed since (``playlist_ot``), applies it, makes it durable before the ack,
and broadcasts the transformed op as ``playlist.op {version, op, author}``. Every accepted
op takes a version, even when nothing is left of it (a remove of a removed item, a duplicate
refused by the playlist's policy), so a client's count of versions never drifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.channels import Channel
from actors.entity import Context, Entity, applies, handles, transient
from actors.kinds.members import Members
from actors.kinds.playlist_types import (
    MILESTONE_EVERY,
    ROLES,
    Authorize,
    Committed,
    Create,
    Created,
    Milestone,
    Open,
    Revert,
    Share,
    Shared,
    Submit,
)
from actors.kinds.presence import PRESENCE_EVENTS, PRESENCE_MESSAGES, Presence
from actors.messages import request_key
from rthub import playlist_ot as ot
from rthub.errors import BadRequest, Conflict, Forbidden

RECENT = 1000  # committed ops kept for transforming ops made on older versions
MAX_ITEMS = 10_000


def check_op(op: dict[str, Any]) -> dict[str, Any]:
    """A client op, well formed (PROTOCOL.md): one of insert, remove, move."""
    if len(op) != 1:
        raise BadRequest("op must be exactly one of insert, remove, move")
    (what, body), = op.items()
    if not isinstance(body, dict):
        raise BadRequest(f"op.{what} must be an object")
    fields = {"insert": {"index": int, "track": object, "item_id": str},
              "remove": {"item_id": str}, "move": {"item_id": str, "to_index": int}}.get(what)
    if fields is None:
        raise BadRequest(f"unknown op {what!r}: use insert, remove or move")
    if set(body) != set(fields):
        raise BadRequest(f"op.{what} takes exactly {', '.join(sorted(fields))}")
    for name, kind in fields.items():
        value = body[name]
        if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadRequest(f"op.{what}.{name} must be an integer >= 0")
        if kind is str and (not isinstance(value, str) or not 1 <= len(value) <= 64):
            raise BadRequest(f"op.{what}.{name} must be 1 to 64 characters")
    if what == "insert" and (body["track"] is None or len(repr(body["track"])) > 1000):
        raise BadRequest("op.insert.track must be a track id or a small object")
    if what == "insert" and not body["item_id"].isprintable():
        raise BadRequest("op.insert.item_id must be printable characters")
    return op


class Playlist(Members, Presence, Entity):
    kind = "playlist"
    roles = ROLES
    not_member = "{user} may not open playlist {id!r}; ask its owner"
    renamed = {"roles": "members"}  # checkpoints made before the Members mixin
    streams = True
    replies_kept = 5000
    channel = Channel("playlist", "playlist", authorize=Authorize, create=Create, open=Open,
                      direct=(Submit, Share), presence=True)
    messages = (Create, Open, Submit, Revert, Share, Authorize, *PRESENCE_MESSAGES)
    events = (Created, Committed, Milestone, Shared, *PRESENCE_EVENTS)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        name: str = ""
        owner: str = ""
        allow_duplicates: bool = False
        members: dict[str, str] = field(default_factory=dict)  # user -> role
        items: list[list[Any]] = field(default_factory=list)  # [item_id, track]
        added_by: dict[str, str] = field(default_factory=dict)
        version: int = 0
        seq: int = 0  # of the playlist:<id> stream
        recent: list[list[Any]] = field(default_factory=list)  # [version, op, undo]
        # "client_id\x1fclient_seq" -> what a resend gets (Entity.remember)
        replies: dict[str, dict[str, Any]] = field(default_factory=dict)
        # transient: collaborators here now (see actors.kinds.presence)
        present: dict[str, dict[str, Any]] = transient(dict)
        occupancy_pending: list[bool] = transient(lambda: [False])

    def _pairs(self) -> ot.Items:
        return [(item_id, track) for item_id, track in self.state.items]

    # -- handlers ------------------------------------------------------------------------------
    @handles(Create)
    def create(self, msg: Create, ctx: Context) -> None:
        if self.state.owner:
            raise Conflict(f"playlist {self.key[2]!r} already exists")
        if not msg.name.strip() or len(msg.name) > 200:
            raise BadRequest("name must be 1 to 200 characters")
        ctx.emit(Created(msg.name, msg.user, msg.allow_duplicates, ctx.now_ms))
        ctx.reply({"playlist_id": self.key[2], "version": 0})

    @handles(Open)
    def open(self, msg: Open, ctx: Context) -> None:
        role = self._role(msg.user)
        ctx.reply({"playlist_id": self.key[2], "name": self.state.name, "role": role,
                   "version": self.state.version, "items": self._view(),
                   "collaborators": [{"user": u, "role": r}
                                     for u, r in sorted(self.state.members.items())],
                   "allow_duplicates": self.state.allow_duplicates})

    def _view(self) -> list[dict[str, Any]]:
        return [{"item_id": i, "track": t, "added_by": self.state.added_by.get(i, "")}
                for i, t in self.state.items]

    @handles(Authorize)
    def authorize(self, msg: Authorize, ctx: Context) -> None:
        ctx.reply({"role": self._role(msg.user), "version": self.state.version})

    @handles(Submit)
    def submit(self, msg: Submit, ctx: Context) -> None:
        if self._role(msg.user) == "viewer":
            raise Forbidden("viewers cannot change the playlist")
        if not 1 <= len(msg.client_id) <= 64:
            raise BadRequest("client_id must be 1 to 64 characters")
        op = check_op(msg.op)
        if not 0 <= msg.base_version <= self.state.version:
            raise BadRequest(f"base_version must be from 0 to {self.state.version}")
        base, newer = self._since(msg.base_version)
        op, _ = ot.transform_against(op, newer, base)
        if ot.kind(op) in ("remove", "move") and not any(
                i == op[ot.kind(op)]["item_id"] for i, _ in self.state.items):
            op = None  # the item is gone (before or since base_version): a no-op version
        conflict = ""
        if ot.kind(op) == "insert":
            if op["insert"]["item_id"] in self.state.added_by or any(
                    i == op["insert"]["item_id"] for i, _ in self.state.items):
                op, conflict = None, "item_id is already used in this playlist"
            elif not self.state.allow_duplicates and any(
                    t == op["insert"]["track"] for _, t in self.state.items):
                op, conflict = None, "the track is already in the playlist (no duplicates)"
            elif len(self.state.items) >= MAX_ITEMS:
                op, conflict = None, f"the playlist is full ({MAX_ITEMS} items)"
        self._commit(op, msg.user, msg.client_id, msg.client_seq, ctx, conflict)

    def _since(self, version: int) -> tuple[ot.Items, list[ot.Op]]:
        """The list at ``version`` and the ops committed after it (undone from now)."""
        behind = self.state.version - version
        if behind > len(self.state.recent):
            raise Conflict(f"base_version {version} is too old (more than {len(self.state.recent)}"
                           " versions behind); open the playlist again")
        recent = self.state.recent[len(self.state.recent) - behind:] if behind else []
        items = self._pairs()
        for _, _, undo in reversed(recent):
            items = ot.apply(items, undo)
        return items, [op for _, op, _ in recent]

    def _commit(self, op: ot.Op, author: str, client_id: str, client_seq: int, ctx: Context,
                conflict: str = "") -> None:
        before = self._pairs()
        after = ot.apply(before, op)
        version = self.state.version + 1
        seq = ctx.stream("playlist.op", {"playlist": self.key[2], "version": version, "op": op,
                                         "author": author, "client_id": client_id,
                                         "client_seq": client_seq})
        ctx.emit(Committed(version, op, _undo(before, op), author, client_id, client_seq, seq,
                           ctx.now_ms, conflict))
        if version % MILESTONE_EVERY == 0:
            ctx.emit(Milestone(version, [[i, t] for i, t in after]))
        ctx.reply(_result(version, op, conflict))

    @handles(Revert)
    def revert(self, msg: Revert, ctx: Context) -> None:
        if self._role(msg.user) == "viewer":
            raise Forbidden("viewers cannot change the playlist")
        if not 0 <= msg.to_version <= self.state.version:
            raise BadRequest(f"to_version must be from 0 to {self.state.version}")
        op = {"reset": {"items": [[item[0], item[1]] for item in msg.items]}}
        self._commit(op, msg.user, msg.client_id or "revert", msg.client_seq, ctx)

    @handles(Share)
    def share(self, msg: Share, ctx: Context) -> None:
        if self._role(msg.user) != "owner":
            raise Forbidden("only the playlist's owner may share it")
        if msg.role not in ROLES[1:]:
            raise BadRequest("role must be editor or viewer")
        if msg.target == self.state.owner:
            raise Forbidden("the owner's role cannot change")
        if not 1 <= len(msg.target) <= 200:
            raise BadRequest("'user' must be a user id of 1 to 200 characters")
        seq = ctx.stream("playlist.shared",
                         {"playlist": self.key[2], "user": msg.target, "role": msg.role})
        ctx.emit(Shared(msg.target, msg.role, msg.user, seq))
        ctx.reply({"playlist_id": self.key[2], "user": msg.target, "role": msg.role})

    # -- appliers ------------------------------------------------------------------------------
    @applies(Created)
    def _created(self, ev: Created) -> None:
        self.state.name, self.state.owner = ev.name, ev.owner
        self.state.allow_duplicates = ev.allow_duplicates
        self.state.members[ev.owner] = "owner"

    @applies(Committed)
    def _committed(self, ev: Committed) -> None:
        s = self.state
        s.items = [[i, t] for i, t in ot.apply(self._pairs(), ev.op)]
        if ot.kind(ev.op) == "insert":
            s.added_by[ev.op["insert"]["item_id"]] = ev.author
        live = {i for i, _ in s.items}
        if len(s.added_by) > 2 * len(live) + 100:  # forget who added long-gone items
            s.added_by = {i: u for i, u in s.added_by.items() if i in live}
        s.version, s.seq = ev.version, ev.seq
        s.recent.append([ev.version, ev.op, ev.undo])
        del s.recent[:-RECENT]
        # a resend after a reconnect gets the first result, whole
        self.remember(request_key(ev.client_id, ev.client_seq),
                      {**_result(ev.version, ev.op, ev.conflict), "duplicate": True})

    @applies(Milestone)
    def _milestone(self, ev: Milestone) -> None:
        """Nothing to change: the snapshot is for readers of old versions."""

    @applies(Shared)
    def _shared(self, ev: Shared) -> None:
        self.state.members[ev.user] = ev.role
        self.state.seq = ev.seq


def _result(version: int, op: ot.Op, conflict: str = "") -> dict[str, Any]:
    """The ack of a committed op; a resend of it gets this again (plus ``duplicate``)."""
    return {"version": version, "op": op, **({"conflict": conflict} if conflict else {})}


def _undo(before: ot.Items, op: ot.Op) -> ot.Op:
    """The op that takes ``before·op`` back to ``before``."""
    what = ot.kind(op)
    if what is None:
        return None
    assert op is not None
    if what == "reset":
        return {"reset": {"items": [[i, t] for i, t in before]}}
    ids = [i for i, _ in before]
    item_id = op[what]["item_id"]
    if what == "insert":
        return None if item_id in ids else {"remove": {"item_id": item_id}}
    if item_id not in ids:
        return None
    at = ids.index(item_id)
    if what == "remove":
        return {"insert": {"index": at, "track": before[at][1], "item_id": item_id}}
    return {"move": {"item_id": item_id, "to_index": at}}
