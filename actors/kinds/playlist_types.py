"""Playlist's messages and events (PROTOCOL.md "Collaborative playlists").

``user`` on every message is the token's (set by the gateway); ``items`` on ``Revert`` are
the list at the target version, read from storage by the gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from actors.kinds.tracks import track_id
from actors.messages import Event, Message, ToMember

ROLES = ("owner", "editor", "viewer")
MILESTONE_EVERY = 100  # a snapshot every this many versions: an old version opens fast


@dataclass(frozen=True, slots=True)
class Create(Message):
    type: ClassVar[str] = "playlist.create"
    user: str
    name: str
    allow_duplicates: bool = False


@dataclass(frozen=True, slots=True)
class Open(Message):
    type: ClassVar[str] = "playlist.open"
    user: str


@dataclass(frozen=True, slots=True)
class Submit(Message):
    type: ClassVar[str] = "playlist.op"
    idempotent: ClassVar[tuple[str, ...]] = ("client_id", "client_seq")
    user: str
    base_version: int
    client_id: str
    client_seq: int
    op: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Revert(Message):
    type: ClassVar[str] = "playlist.revert"
    user: str
    to_version: int
    items: list[list[Any]]  # [[item_id, track, added_by]] at to_version (from storage)
    client_id: str = ""
    client_seq: int = 0


@dataclass(frozen=True, slots=True)
class Share(ToMember):
    type: ClassVar[str] = "playlist.share"
    role: str


@dataclass(frozen=True, slots=True)
class Authorize(Message):
    """May ``user`` read this playlist (stream, history)?"""

    type: ClassVar[str] = "playlist.authorize"
    user: str


@dataclass(frozen=True, slots=True)
class Created(Event):
    name: str
    owner: str
    allow_duplicates: bool
    at_ms: int

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("playlist.snapshot", {"tenant": key[0], "playlist_id": key[2], "version": 0,
                                       "items": "[]"})]


@dataclass(frozen=True, slots=True)
class Committed(Event):
    """One version: the op as applied (None when nothing was left of it), with what undoes
    it, so an op made on an older version can be transformed."""

    version: int
    op: dict[str, Any] | None
    undo: dict[str, Any] | None
    author: str
    client_id: str
    client_seq: int
    seq: int  # on the playlist's stream
    at_ms: int
    conflict: str = ""

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        found = [("playlist.op", {"tenant": key[0], "playlist_id": key[2],
                                  "version": self.version, "op": json.dumps(self.op),
                                  "author": self.author, "client_id": self.client_id,
                                  "client_seq": self.client_seq, "at_ms": self.at_ms})]
        # a listening event: added, or removed (the track is in what undoes the removal)
        added = (self.op or {}).get("insert")
        removed = (self.undo or {}).get("insert") if "remove" in (self.op or {}) else None
        if added or removed:
            found.append(("listen", {
                "tenant": key[0], "user": self.author,
                "track": track_id((added or removed)["track"]),
                "event": "added" if added else "removed", "position_ms": None,
                "context": f"playlist:{key[2]}", "at_ms": self.at_ms}))
        return found


@dataclass(frozen=True, slots=True)
class Milestone(Event):
    version: int
    items: list[list[Any]]

    def projections(self, key: tuple[str, str, str]) -> list[tuple[str, dict[str, Any]]]:
        return [("playlist.snapshot", {"tenant": key[0], "playlist_id": key[2],
                                       "version": self.version,
                                       "items": json.dumps(self.items)})]


@dataclass(frozen=True, slots=True)
class Shared(Event):
    user: str
    role: str
    by: str
    seq: int
