"""Per-room retention: messages older than their room's ``retention_s`` are deleted, and so
are uploads no message refers to any more.

Every host runs the sweep on a timer; a transaction-scoped advisory lock lets one of them
work at a time. Deletion removes the row, and with it the only copy of the text: the entity
log never held it (``Event.private``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from storage.blobs import BlobStore

log = logging.getLogger(__name__)

_LOCK = 0x72746872  # "rthr"
BATCH = 5000
ORPHAN_GRACE_S = 86_400  # an upload never posted is kept this long

_COUNT_EXPIRED = """
WITH doomed AS (
    SELECT m.tenant, m.room_id, m.seq, m.message_id FROM chat_messages m
    JOIN chat_rooms r ON r.tenant = m.tenant AND r.room_id = m.room_id
    WHERE r.retention_s IS NOT NULL AND m.sent_at < now() - make_interval(secs => r.retention_s)
    LIMIT $1
), gone AS (
    DELETE FROM chat_messages m USING doomed d
    WHERE m.tenant = d.tenant AND m.room_id = d.room_id AND m.seq = d.seq
    RETURNING m.tenant, m.room_id, m.message_id
), unlinked AS (
    DELETE FROM chat_attachments a USING gone g
    WHERE a.tenant = g.tenant AND a.room_id = g.room_id AND a.message_id = g.message_id
)
SELECT count(*) FROM gone"""

_ORPHANS = """
DELETE FROM attachments a
WHERE a.ctid IN (
    SELECT a2.ctid FROM attachments a2
    WHERE a2.created_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM chat_attachments ca
                      WHERE ca.tenant = a2.tenant AND ca.attachment_id = a2.attachment_id)
    LIMIT $2)
RETURNING a.blob_key"""


@dataclass(slots=True)
class Purged:
    messages: int = 0
    attachments: int = 0
    skipped: bool = False  # another host held the lock


async def purge_expired(pool: asyncpg.Pool, blobs: BlobStore,
                        orphan_grace_s: float = ORPHAN_GRACE_S) -> Purged:
    """Delete expired messages and orphaned uploads, in batches; safe to run anywhere."""
    purged = Purged()
    async with pool.acquire() as conn:
        while True:
            async with conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                    purged.skipped = True
                    return purged
                count = await conn.fetchval(_COUNT_EXPIRED, BATCH)
                keys = [r["blob_key"] for r in await conn.fetch(_ORPHANS, orphan_grace_s,
                                                                   BATCH)]
            purged.messages += count
            for key in keys:  # rows first: a blob whose row is gone is unreachable anyway
                await blobs.delete(key)
            purged.attachments += len(keys)
            if count < BATCH and len(keys) < BATCH:
                break
    if purged.messages or purged.attachments:
        log.info("retention: %d messages and %d unreferenced uploads deleted", purged.messages,
                 purged.attachments)
    return purged
