"""Attachments: sealed bytes in the blob store, a row per file, and who may read it.

The bytes are sealed before they leave the process (AES-GCM, bound to the tenant and id), so
neither a local folder nor an S3 bucket ever holds a readable file. A file may be read by its
uploader, and by the members of every room where a message refers to it (``chat_attachments``
is written with the message, in the same transaction).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.blobs import BlobStore
from storage.crypto import Keyring, aad


def blob_aad(tenant: str, attachment_id: str) -> bytes:
    return aad(tenant, "attachments", attachment_id)


async def store(pool: asyncpg.Pool, blobs: BlobStore, keyring: Keyring, tenant: str,
                uploader: str, filename: str, content_type: str, data: bytes) -> dict[str, Any]:
    """Seal and keep one upload; its description (what ``POST /v1/attachments`` returns)."""
    attachment_id = secrets.token_urlsafe(16)
    key_id, sealed = keyring.seal(data, blob_aad(tenant, attachment_id))
    blob_key = f"att/{attachment_id}"
    await blobs.put(blob_key, sealed)
    await pool.execute(
        "INSERT INTO attachments (tenant, attachment_id, uploader, content_type, size, filename, "
        "key_id, blob_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant, attachment_id, uploader, content_type, len(data), filename, key_id, blob_key)
    return {"attachment_id": attachment_id, "content_type": content_type, "size": len(data),
            "filename": filename}


async def owned(pool: asyncpg.Pool, tenant: str, user: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` ``user`` uploaded (a message may only carry those)."""
    rows = await pool.fetch(
        "SELECT attachment_id FROM attachments WHERE tenant = $1 AND uploader = $2 "
        "AND attachment_id = ANY($3::text[])", tenant, user, list(ids))
    return {r["attachment_id"] for r in rows}


_READABLE = """
SELECT a.content_type, a.size, a.filename, a.key_id, a.blob_key
FROM attachments a
WHERE a.tenant = $1 AND a.attachment_id = $2
  AND (a.uploader = $3 OR EXISTS (
        SELECT 1 FROM chat_attachments ca
        JOIN chat_members cm ON cm.tenant = ca.tenant AND cm.room_id = ca.room_id
                            AND cm.user_id = $3
        WHERE ca.tenant = a.tenant AND ca.attachment_id = a.attachment_id))"""


async def fetch(pool: asyncpg.Pool, blobs: BlobStore, keyring: Keyring, tenant: str, user: str,
                attachment_id: str) -> tuple[dict[str, Any], bytes] | None:
    """(description, plain bytes) if ``user`` may read the file; None if not, or no such file
    (the two are not told apart: an id proves nothing)."""
    row = await pool.fetchrow(_READABLE, tenant, attachment_id, user)
    if row is None:
        return None
    sealed = await blobs.get(row["blob_key"])
    data = keyring.open(row["key_id"], sealed, blob_aad(tenant, attachment_id))
    return ({"content_type": row["content_type"], "size": row["size"],
             "filename": row["filename"]}, data)
