"""The collaborative playlist messages of PROTOCOL.md that need the gateway's storage.

The Playlist entity decides and orders every change, and its channel spec routes create, open,
op and share; what is written here reads old versions from storage (the op log and its
milestones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.channels import check_id
from actors.kinds.playlist_types import Authorize, Open, Revert
from actors.kinds.tracks import track_id
from rthub import playlist_ot as ot
from rthub.errors import BadRequest, NotFound
from serve.handlers import Gateway, Routes, Socket
from storage import playlists as store

if TYPE_CHECKING:
    import asyncpg

ROUTES = Routes()

HISTORY_MAX = 1000
SUGGEST_MAX = 50


def playlist_of(content: dict[str, Any]) -> str:
    return check_id(content.get("playlist"), "playlist")


def _version(content: dict[str, Any], name: str, default: int | None = None) -> int:
    value = content.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"'{name}' must be an integer >= 0")
    return value


@ROUTES.handles("playlist.history")
async def playlist_history(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    since = _version(content, "from_version", 0)
    ref = gw.ref("playlist", playlist, conn.identity.tenant)
    now = (await ref.ask(Authorize(conn.identity.user)))["version"]
    found = await store.ops(await gw.db(), conn.identity.tenant, playlist, since, now,
                            HISTORY_MAX + 1)
    return {"ops": found[:HISTORY_MAX], "version": now, "more": len(found) > HISTORY_MAX}


async def items_at(gw: Gateway, tenant: str, playlist: str, version: int
                   ) -> list[list[Any]]:
    """The list at ``version`` (what ``playlist.revert`` restores)."""
    return (await replay(await gw.db(), tenant, playlist, version))[1]


async def replay(pool: asyncpg.Pool, tenant: str, playlist: str, version: int
                 ) -> tuple[int, list[list[Any]]]:
    """The list at ``version``, built from the newest milestone at or before it plus the ops
    since: (the milestone's version, the list)."""
    found = await store.snapshot_before(pool, tenant, playlist, version)
    if found is None:
        raise NotFound(f"no version {version} of playlist {playlist!r}")
    milestone, items = found
    state: ot.Items = [(i, t) for i, t in items]
    start = milestone
    while start < version:
        batch = await store.ops(pool, tenant, playlist, start, version, HISTORY_MAX)
        if not batch:
            raise NotFound(f"playlist {playlist!r} has no ops after version {start}")
        for entry in batch:
            state = ot.apply(state, entry["op"])
        start = batch[-1]["version"]
    return milestone, [[i, t] for i, t in state]


@ROUTES.handles("playlist.revert")
async def playlist_revert(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    target = _version(content, "to_version")
    ref = gw.ref("playlist", playlist, conn.identity.tenant)
    now = (await ref.ask(Authorize(conn.identity.user)))["version"]
    if target > now:
        raise BadRequest(f"to_version must be from 0 to {now}")
    items = await items_at(gw, conn.identity.tenant, playlist, target)
    return await ref.ask(Revert(conn.identity.user, target, items,
                                str(content.get("client_id", ""))[:64],
                                _version(content, "client_seq", 0)))


@ROUTES.handles("playlist.suggest")
async def playlist_suggest(gw: Gateway, conn: Socket, frame: dict[str, Any]) -> dict:
    """Tracks to add: the playlist's tracks as the history, none already in it (PROTOCOL.md:
    ``{tracks: [{track, score}], model, fallback}``)."""
    content = frame["content"]
    playlist = playlist_of(content)
    limit = content.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= SUGGEST_MAX:
        raise BadRequest(f"'limit' must be an integer from 1 to {SUGGEST_MAX}")
    user, tenant = conn.identity.user, conn.identity.tenant
    opened = await gw.ref("playlist", playlist, tenant).ask(Open(user))
    tracks = [track_id(item["track"]) for item in opened["items"]]
    answer = await gw.recommendations.ask(tenant, user, tracks, tracks, limit)
    return {k: answer[k] for k in ("tracks", "model", "fallback")}
