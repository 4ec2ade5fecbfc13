"""The collaborative playlist messages of PROTOCOL.md at the gateway: one handler per type.

The Playlist entity decides and orders every change; the gateway follows the playlist's
topic for the socket and reads old versions from storage (the op log and its milestones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.kinds.playlist_types import Authorize, Create, Open, Revert, Share, Submit
from rthub import playlist_ot as ot
from rthub.errors import BadRequest, NotFound
from serve.handlers import entity_fields, entity_id, follow_topic, handles
from storage import playlists as store

if TYPE_CHECKING:
    import asyncpg

    from serve.connection import Connection
    from serve.gateway import GatewayCore

HISTORY_MAX = 1000


def playlist_of(content: dict[str, Any]) -> str:
    return entity_id(content, "playlist")


def _version(content: dict[str, Any], name: str, default: int | None = None) -> int:
    value = content.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"'{name}' must be an integer >= 0")
    return value


@handles("playlist.create")
async def playlist_create(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = dict(frame["content"])
    playlist = entity_id(content, "playlist_id", new=True)
    content.pop("playlist_id", None)
    payload = Create.decode(entity_fields(content, conn.identity.user))
    reply = await core.playlist(conn, playlist).ask(payload)
    return {**reply, **await follow_topic(core, conn, f"playlist:{playlist}")}


@handles("playlist.open")
async def playlist_open(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    """Follow first, then read: every op after the returned version arrives live (ops at or
    before it may arrive too; clients drop ``version <= theirs``)."""
    playlist = playlist_of(frame["content"])
    ref = core.playlist(conn, playlist)
    await ref.ask(Authorize(conn.identity.user))
    where = await follow_topic(core, conn, f"playlist:{playlist}")
    return {**await ref.ask(Open(conn.identity.user)), **where}


@handles("playlist.op", pipelined=True)
async def playlist_op(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    payload = Submit.decode(entity_fields(content, conn.identity.user, "playlist"))
    return await core.playlist(conn, playlist).ask(payload)


@handles("playlist.history")
async def playlist_history(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    since = _version(content, "from_version", 0)
    now = (await core.playlist(conn, playlist).ask(Authorize(conn.identity.user)))["version"]
    found = await store.ops(await core.db(), conn.identity.tenant, playlist, since, now,
                            HISTORY_MAX + 1)
    return {"ops": found[:HISTORY_MAX], "version": now, "more": len(found) > HISTORY_MAX}


async def items_at(core: GatewayCore, tenant: str, playlist: str, version: int
                   ) -> list[list[Any]]:
    """The list at ``version`` (what ``playlist.revert`` restores)."""
    return (await replay(await core.db(), tenant, playlist, version))[1]


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


@handles("playlist.revert")
async def playlist_revert(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    target = _version(content, "to_version")
    ref = core.playlist(conn, playlist)
    now = (await ref.ask(Authorize(conn.identity.user)))["version"]
    if target > now:
        raise BadRequest(f"to_version must be from 0 to {now}")
    items = await items_at(core, conn.identity.tenant, playlist, target)
    return await ref.ask(Revert(conn.identity.user, target, items,
                                str(content.get("client_id", ""))[:64],
                                _version(content, "client_seq", 0)))


@handles("playlist.share", pipelined=True)
async def playlist_share(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    playlist = playlist_of(content)
    target, role = content.get("user"), content.get("role")
    if not isinstance(target, str) or not isinstance(role, str):
        raise BadRequest("playlist.share needs 'user' and 'role' (editor or viewer)")
    return await core.playlist(conn, playlist).ask(Share(conn.identity.user, target, role))
