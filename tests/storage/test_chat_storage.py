"""Chat storage on a real PostgreSQL: sealing, key rotation, retention, projection order."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from storage import attachments, retention, rotation
from storage import chat as chat_store
from storage.blobs import BlobMissing, LocalBlobs
from storage.crypto import Keyring, SealError, aad, new_key
from storage.journal import Journal
from storage.postgres import open_pool

K1, K2 = new_key("k1"), new_key("k2")


@pytest.fixture
async def pool(pg_url):
    pool = await open_pool(pg_url, 4)
    yield pool
    await pool.close()


def message(seq: int, text: str, room: str = "r", at: datetime | None = None) -> dict:
    at_ms = int((at or datetime.now(UTC)).timestamp() * 1000)
    return {"tenant": "t", "room_id": room, "seq": seq, "message_id": f"{room}-m{seq}",
            "sender": "olga", "client_msg_id": str(seq), "text": text, "reply_to": None,
            "attachments": [], "search": True, "at_ms": at_ms}


async def post(pool, ring: Keyring, *rows: dict) -> None:
    projections = chat_store.ChatProjections(ring, "english")
    async with pool.acquire() as conn, conn.transaction():
        await projections.message(conn, list(rows))


def test_a_value_sealed_for_one_row_does_not_open_in_another():
    ring = Keyring.parse(K1)
    key_id, sealed = ring.seal(b"hello", aad("t", "chat_messages", "r", "m1"))
    assert ring.open(key_id, sealed, aad("t", "chat_messages", "r", "m1")) == b"hello"
    with pytest.raises(SealError, match="failed authentication"):
        ring.open(key_id, sealed, aad("t", "chat_messages", "r", "m2"))
    with pytest.raises(SealError, match="key 'k9' is not configured"):
        ring.open("k9", sealed, b"")


async def test_rotation_reseals_everything_and_old_rows_stay_readable_meanwhile(pool, tmp_path):
    blobs = LocalBlobs(tmp_path)
    old = Keyring.parse(K1)
    await post(pool, old, message(1, "first words"), message(2, "second words"))
    await pool.execute(  # a row from before encryption (migration 0003 kept it in plain text)
        "INSERT INTO chat_messages (tenant, room_id, seq, message_id, sender, client_msg_id, "
        "body, sent_at) VALUES ('t', 'r', 3, 'r-m3', 'olga', '3', 'legacy words', now())")
    stored = await attachments.store(pool, blobs, old, "t", "olga", "a.txt", "text/plain",
                                     b"file bytes")
    both = Keyring.parse(f"{K2},{K1}")  # k2 now seals; k1 still opens
    history = await chat_store.history(pool, both, "t", "r", None, 10)
    assert [m["text"] for m in history] == ["legacy words", "second words", "first words"]
    assert await rotation.remaining(pool, both) == 4

    done = await rotation.rotate(pool, blobs, both)

    assert (done.messages, done.attachments, done.failed) == (3, 1, 0)
    assert await rotation.remaining(pool, both) == 0
    only_new = Keyring.parse(K2)  # the old key can go now
    history = await chat_store.history(pool, only_new, "t", "r", None, 10)
    assert [m["text"] for m in history] == ["legacy words", "second words", "first words"]
    assert await pool.fetchval("SELECT count(*) FROM chat_messages WHERE body IS NOT NULL") == 0
    found = await attachments.fetch(pool, blobs, only_new, "t", "olga",
                                    stored["attachment_id"])
    assert found is not None
    assert found[1] == b"file bytes"
    with pytest.raises(BlobMissing):  # the blob sealed under k1 is gone
        await blobs.get(f"att/{stored['attachment_id']}")


async def test_rotate_command_reports_progress(pg_url, tmp_path):
    pool = await open_pool(pg_url, 2)
    try:
        await post(pool, Keyring.parse(K1), message(1, "hello"))
    finally:
        await pool.close()
    env = {**os.environ, "POSTGRES_URL": pg_url, "RTHUB_ENCRYPTION_KEYS": f"{K2},{K1}",
           "RTHUB_DATA_DIR": str(tmp_path), "RTHUB_LOG_LEVEL": "WARNING"}

    def keys(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "rthub.cli", "keys", *args], env=env,
                              capture_output=True, text=True, check=True).stdout

    assert await asyncio.to_thread(keys, "status") == "1 rows not under key k2\n"
    assert await asyncio.to_thread(keys, "rotate") == (
        "re-sealed under k2: 1 messages, 0 attachments, 0 failed; 0 rows left on other keys\n")
    generated = await asyncio.to_thread(keys, "generate", "--id", "k3")
    assert Keyring.parse(generated.strip()).active == "k3"


async def test_retention_deletes_expired_messages_and_unreferenced_uploads(pool, tmp_path):
    blobs = LocalBlobs(tmp_path)
    ring = Keyring.parse(K1)
    journal = Journal(pool, chat_store.ChatProjections(ring, "english").projectors())
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    rooms = [("short", 3600), ("forever", None)]
    for room, retention_s in rooms:
        await journal.append([], [("chat.room", {
            "tenant": "t", "room_id": room, "name": room, "visibility": "public",
            "owner": "olga", "search": True, "retention_s": retention_s,
            "at_ms": int(long_ago.timestamp() * 1000)})])
        await post(pool, ring, message(1, "old", room, long_ago), message(2, "new", room))
    kept = await attachments.store(pool, blobs, ring, "t", "olga", "k.txt", "text/plain", b"k")
    orphan = await attachments.store(pool, blobs, ring, "t", "olga", "o.txt", "text/plain",
                                     b"o")
    await journal.append([], [("chat.message", {
        **message(3, "with file", "forever"), "attachments": [kept["attachment_id"]]})])

    purged = await retention.purge_expired(pool, blobs, orphan_grace_s=0)

    assert (purged.messages, purged.attachments) == (1, 1)
    left = await pool.fetch("SELECT room_id, seq FROM chat_messages ORDER BY room_id, seq")
    assert [(r["room_id"], r["seq"]) for r in left] == [
        ("forever", 1), ("forever", 2), ("forever", 3), ("short", 2)]
    with pytest.raises(BlobMissing):
        await blobs.get(f"att/{orphan['attachment_id']}")
    assert await blobs.get(f"att/{kept['attachment_id']}")
    await journal.writer.close()


async def test_a_message_posted_and_deleted_in_one_commit_ends_deleted(pool):
    ring = Keyring.parse(K1)
    journal = Journal(pool, chat_store.ChatProjections(ring, "english").projectors())
    posted = ("chat.message", message(1, "oops"))
    deleted = ("chat.delete", {"tenant": "t", "room_id": "r", "message_id": "r-m1",
                               "by": "olga", "at_ms": 0})
    await journal.append([], [posted, deleted])
    (row,) = await chat_store.history(pool, ring, "t", "r", None, 10)
    assert row["deleted"] is True
    assert row["text"] == ""
    await journal.writer.close()
