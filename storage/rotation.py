"""Key rotation: re-seal message text and attachment bytes under the active key.

Run by ``rthub keys rotate`` while the hub serves: it walks each table in primary-key order,
a batch per short transaction, and changes a row only if it still holds what was read (an
edit or delete racing it wins). Rows written before encryption existed (plain ``body``) are
sealed too. Attachments get a new blob under a new name before the row points at it, so a
crash never leaves a row naming bytes it cannot open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from storage.attachments import blob_aad
from storage.blobs import BlobMissing, BlobStore
from storage.chat import message_aad
from storage.crypto import Keyring, SealError

log = logging.getLogger(__name__)

BATCH = 500

_MESSAGES = """
SELECT tenant, room_id, seq, message_id, sealed, key_id, body FROM chat_messages
WHERE (tenant, room_id, seq) > ($1, $2, $3) AND deleted_at IS NULL
  AND (sealed IS NOT NULL OR body IS NOT NULL) AND key_id IS DISTINCT FROM $4
ORDER BY tenant, room_id, seq LIMIT $5"""

_RESEAL_MESSAGE = """
UPDATE chat_messages SET sealed = $5, key_id = $6, body = NULL
WHERE tenant = $1 AND room_id = $2 AND seq = $3 AND key_id IS NOT DISTINCT FROM $4
  AND deleted_at IS NULL"""

_ATTACHMENTS = """
SELECT tenant, attachment_id, key_id, blob_key FROM attachments
WHERE (tenant, attachment_id) > ($1, $2) AND key_id <> $3
ORDER BY tenant, attachment_id LIMIT $4"""


@dataclass(slots=True)
class Rotated:
    messages: int = 0
    attachments: int = 0
    failed: int = 0  # rows sealed by a key no longer configured (logged)


async def remaining(pool: asyncpg.Pool, keyring: Keyring) -> int:
    """Rows not yet under the active key (0: the old keys may be removed)."""
    return await pool.fetchval(
        "SELECT (SELECT count(*) FROM chat_messages WHERE deleted_at IS NULL "
        "        AND (sealed IS NOT NULL OR body IS NOT NULL) AND key_id IS DISTINCT FROM $1)"
        " + (SELECT count(*) FROM attachments WHERE key_id <> $1)", keyring.active)


async def rotate(pool: asyncpg.Pool, blobs: BlobStore, keyring: Keyring) -> Rotated:
    done = Rotated()
    await _messages(pool, keyring, done)
    await _attachments(pool, blobs, keyring, done)
    log.info("rotation to key %s: %d messages, %d attachments re-sealed, %d failed",
             keyring.active, done.messages, done.attachments, done.failed)
    return done


async def _messages(pool: asyncpg.Pool, keyring: Keyring, done: Rotated) -> None:
    after = ("", "", -1)
    while True:
        rows = await pool.fetch(_MESSAGES, *after, keyring.active, BATCH)
        if not rows:
            return
        updates = []
        for r in rows:
            where = message_aad(r["tenant"], r["room_id"], r["message_id"])
            try:
                text = (keyring.open_text(r["key_id"], r["sealed"], where)
                        if r["sealed"] is not None else r["body"])
            except SealError as err:
                log.error("message %s/%s: %s", r["room_id"], r["message_id"], err)
                done.failed += 1
                continue
            key_id, sealed = keyring.seal_text(text, where)
            updates.append((r["tenant"], r["room_id"], r["seq"], r["key_id"], sealed, key_id))
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(_RESEAL_MESSAGE, updates)
        done.messages += len(updates)
        last = rows[-1]
        after = (last["tenant"], last["room_id"], last["seq"])


async def _attachments(pool: asyncpg.Pool, blobs: BlobStore, keyring: Keyring,
                       done: Rotated) -> None:
    after = ("", "")
    while True:
        rows = await pool.fetch(_ATTACHMENTS, *after, keyring.active, BATCH)
        if not rows:
            return
        for r in rows:
            where = blob_aad(r["tenant"], r["attachment_id"])
            try:
                data = keyring.open(r["key_id"], await blobs.get(r["blob_key"]), where)
            except (SealError, BlobMissing) as err:
                log.error("attachment %s: %s", r["attachment_id"], err)
                done.failed += 1
                continue
            key_id, sealed = keyring.seal(data, where)
            new_key = f"att/{r['attachment_id']}.{key_id}"
            await blobs.put(new_key, sealed)
            changed = await pool.execute(
                "UPDATE attachments SET key_id = $3, blob_key = $4 WHERE tenant = $1 "
                "AND attachment_id = $2 AND blob_key = $5", r["tenant"], r["attachment_id"],
                key_id, new_key, r["blob_key"])
            if changed == "UPDATE 1":
                await blobs.delete(r["blob_key"])
                done.attachments += 1
            else:  # deleted meanwhile: drop the copy
                await blobs.delete(new_key)
        after = (rows[-1]["tenant"], rows[-1]["attachment_id"])
