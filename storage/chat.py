"""Chat's query tables: how ChatRoom events become rows, and how the gateway reads them back.

Writes are *projectors*: the log writer calls them inside the transaction that appends the
events, so history, search and permissions never disagree with the log. Message text is
sealed here (``storage.crypto``) and its search vector computed from the plain text in the
same statement; the plain text itself is never stored. Reads open the text again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from storage.crypto import Keyring, aad

Projector = Callable[[asyncpg.Connection, list[dict[str, Any]]], Awaitable[None]]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def message_aad(tenant: str, room: str, message_id: str) -> bytes:
    return aad(tenant, "chat_messages", room, message_id)


_INSERT_MESSAGE = """
INSERT INTO chat_messages (tenant, room_id, seq, message_id, sender, client_msg_id, sealed,
                           key_id, reply_to, sent_at, attachments, tsv)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
        CASE WHEN $12 THEN to_tsvector($13::regconfig, $14) END)"""

_LINK_ATTACHMENT = """
INSERT INTO chat_attachments (tenant, attachment_id, room_id, message_id)
SELECT $1, a, $2, $3 FROM unnest($4::text[]) AS a ON CONFLICT DO NOTHING"""

_EDIT_MESSAGE = """
UPDATE chat_messages SET sealed = $4, key_id = $5, body = NULL, edited_at = $6,
       tsv = CASE WHEN $7 THEN to_tsvector($8::regconfig, $9) END
WHERE tenant = $1 AND room_id = $2 AND message_id = $3 AND deleted_at IS NULL"""

_DELETE_MESSAGE = """
UPDATE chat_messages SET sealed = NULL, key_id = NULL, body = NULL, tsv = NULL,
       attachments = '{}', deleted_at = $4, deleted_by = $5
WHERE tenant = $1 AND room_id = $2 AND message_id = $3"""

_UNLINK_ATTACHMENTS = """
DELETE FROM chat_attachments WHERE tenant = $1 AND room_id = $2 AND message_id = $3"""

_UPSERT_ROOM = """
INSERT INTO chat_rooms (tenant, room_id, name, visibility, owner, search, retention_s,
                        created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant, room_id) DO UPDATE SET name = EXCLUDED.name, search = EXCLUDED.search,
    retention_s = EXCLUDED.retention_s"""

# A room whose search is turned off drops the vectors of what it already holds (its stemmed
# words included); turned on again, it indexes what is sent from then on.
_UNINDEX_ROOM = """
UPDATE chat_messages SET tsv = NULL WHERE tenant = $1 AND room_id = $2 AND tsv IS NOT NULL"""

_UPSERT_MEMBER = """
INSERT INTO chat_members (tenant, room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant, room_id, user_id) DO UPDATE SET role = EXCLUDED.role"""

_REMOVE_MEMBER = "DELETE FROM chat_members WHERE tenant = $1 AND room_id = $2 AND user_id = $3"


class ChatProjections:
    """The projectors of ChatRoom's events, with the keys and search language they need."""

    def __init__(self, keyring: Keyring, language: str) -> None:
        self.keyring = keyring
        self.language = language

    def projectors(self) -> Mapping[str, Projector]:
        return {"chat.message": self.message, "chat.edit": self.edit,
                "chat.delete": self.delete, "chat.room": self.room,
                "chat.member": self.member, "chat.member_gone": self.member_gone}

    async def message(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        values, links = [], []
        for r in rows:
            key_id, sealed = self.keyring.seal_text(
                r["text"], message_aad(r["tenant"], r["room_id"], r["message_id"]))
            values.append((r["tenant"], r["room_id"], r["seq"], r["message_id"], r["sender"],
                           r["client_msg_id"], sealed, key_id, r["reply_to"], at(r["at_ms"]),
                           r["attachments"], r["search"], self.language, r["text"]))
            if r["attachments"]:
                links.append((r["tenant"], r["room_id"], r["message_id"], r["attachments"]))
        await conn.executemany(_INSERT_MESSAGE, values)
        if links:
            await conn.executemany(_LINK_ATTACHMENT, links)

    async def edit(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        values = []
        for r in rows:
            key_id, sealed = self.keyring.seal_text(
                r["text"], message_aad(r["tenant"], r["room_id"], r["message_id"]))
            values.append((r["tenant"], r["room_id"], r["message_id"], sealed, key_id,
                           at(r["at_ms"]), r["search"], self.language, r["text"]))
        await conn.executemany(_EDIT_MESSAGE, values)

    async def delete(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        await conn.executemany(_DELETE_MESSAGE, [
            (r["tenant"], r["room_id"], r["message_id"], at(r["at_ms"]), r["by"]) for r in rows])
        await conn.executemany(_UNLINK_ATTACHMENTS, [
            (r["tenant"], r["room_id"], r["message_id"]) for r in rows])

    async def room(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        await conn.executemany(_UPSERT_ROOM, [
            (r["tenant"], r["room_id"], r["name"], r["visibility"], r["owner"], r["search"],
             r["retention_s"], at(r["at_ms"])) for r in rows])
        unsearchable = [(r["tenant"], r["room_id"]) for r in rows if not r["search"]]
        if unsearchable:
            await conn.executemany(_UNINDEX_ROOM, unsearchable)

    async def member(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        await conn.executemany(_UPSERT_MEMBER, [
            (r["tenant"], r["room_id"], r["user"], r["role"], at(r["at_ms"])) for r in rows])

    async def member_gone(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        await conn.executemany(_REMOVE_MEMBER, [
            (r["tenant"], r["room_id"], r["user"]) for r in rows])


# -- reads (the gateway) -----------------------------------------------------------------------
def open_text(keyring: Keyring, row: Mapping[str, Any], tenant: str, room: str) -> str:
    """A row's plain text: sealed, legacy plain (before migration 0003), or deleted ("")."""
    if row["sealed"] is not None:
        return keyring.open_text(row["key_id"], row["sealed"],
                                 message_aad(tenant, room, row["message_id"]))
    return row["body"] or ""


_HISTORY = """
SELECT message_id, sender, seq, sent_at, reply_to, sealed, key_id, body, attachments, edited_at,
       deleted_at
FROM chat_messages WHERE tenant = $1 AND room_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"""


async def history(pool: asyncpg.Pool, keyring: Keyring, tenant: str, room: str,
                  before: int | None, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages before ``before`` (newest first), text opened; deleted
    messages come back as tombstones."""
    rows = await pool.fetch(_HISTORY, tenant, room, before or 2**62, limit)
    return [{"message_id": r["message_id"], "sender": r["sender"], "seq": r["seq"],
             "at_ms": ms(r["sent_at"]), "reply_to": r["reply_to"],
             "attachments": list(r["attachments"]), "edited_at_ms": ms(r["edited_at"]),
             "deleted": r["deleted_at"] is not None,
             "text": "" if r["deleted_at"] is not None else open_text(keyring, r, tenant, room)}
            for r in rows]


async def message_author(pool: asyncpg.Pool, tenant: str, room: str, message_id: str
                         ) -> tuple[str, bool] | None:
    """(sender, deleted) of a stored message, or None."""
    row = await pool.fetchrow(
        "SELECT sender, deleted_at IS NOT NULL AS deleted FROM chat_messages "
        "WHERE tenant = $1 AND message_id = $2 AND room_id = $3", tenant, message_id, room)
    return None if row is None else (row["sender"], row["deleted"])


# The user's rooms as an array, not a join: with a join the planner probes the GIN index once
# per room (a common word's whole posting list, again and again); with ``= ANY(array)`` it
# reads the posting list once and intersects it with one scan of the room index
# (benchmarks/search.py: p95 63 -> 17 ms over a user's rooms at 1M messages).
_SEARCH = """
SELECT m.room_id, m.message_id, m.seq, m.sender, m.sealed, m.key_id, m.body, m.sent_at,
       ts_rank(m.tsv, q) AS rank
FROM websearch_to_tsquery($1::regconfig, $2) AS q, chat_messages AS m
WHERE m.tenant = $3 AND m.tsv @@ q
  AND m.room_id = ANY(ARRAY(SELECT room_id FROM chat_members
                            WHERE tenant = $3 AND user_id = $4
                              AND ($5::text IS NULL OR room_id = $5)))
ORDER BY rank DESC, m.sent_at DESC
LIMIT $6"""


async def search(pool: asyncpg.Pool, keyring: Keyring, language: str, tenant: str, user: str,
                 query: str, room: str | None, limit: int) -> list[dict[str, Any]]:
    """Ranked hits in rooms ``user`` is a member of (deleted and unsearchable messages have
    no vector, so they never match)."""
    rows = await pool.fetch(_SEARCH, language, query, tenant, user, room, limit)
    return [{"message_id": r["message_id"], "room": r["room_id"], "seq": r["seq"],
             "sender": r["sender"], "rank": round(float(r["rank"]), 6),
             "ts_ms": ms(r["sent_at"]),
             "text": open_text(keyring, r, tenant, r["room_id"])} for r in rows]


async def readable_rooms(pool: asyncpg.Pool, tenant: str, user: str) -> list[str]:
    rows = await pool.fetch("SELECT room_id FROM chat_members WHERE tenant = $1 AND user_id = $2",
                            tenant, user)
    return [r["room_id"] for r in rows]
