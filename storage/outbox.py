"""The stream outbox: stream events written with the commit that made them, deleted once
published, and read back by activation and by the sweep.

A row's life: ``storage.journal.LogWriter`` inserts it in the entity log's transaction;
the host's publisher puts the event in Redis; ``Outbox.confirm`` deletes it, batched. A host
that dies in between leaves the row, so the event is published again (Redis keeps a ``seq``
once; gateways drop a repeated one) before the entity's next event. Deletes are batched
because the row is only a safety net: being late costs a repeated publish, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from storage.crypto import Keyring, SealError, aad
from storage.postgres import columns

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (tenant, kind, entity_id)
OutboxRow = tuple[str, str, str, str, int, str, bytes, str | None, int]
"""key + (topic, seq, event_type, content, removes, ts_ms): one stream event to publish."""

CONFIRM_EVERY_S = 0.5

INSERT = """
INSERT INTO stream_outbox (tenant, kind, entity_id, topic, seq, event_type, content, removes,
                           ts_ms, key_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                     $7::bytea[], $8::text[], $9::bigint[], $10::text[])"""

LOAD = """
SELECT o.tenant, o.kind, o.entity_id, o.topic, o.seq, o.event_type, o.content, o.removes,
       o.ts_ms, o.key_id
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, kind, entity_id)
JOIN stream_outbox o USING (tenant, kind, entity_id)
ORDER BY o.tenant, o.kind, o.entity_id, o.topic, o.seq"""

_DELETE = """
DELETE FROM stream_outbox o
USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
      AS d(tenant, kind, entity_id, topic, seq)
WHERE o.tenant = d.tenant AND o.kind = d.kind AND o.entity_id = d.entity_id
  AND o.topic = d.topic AND o.seq = d.seq"""

# Entities with an event older than $1 seconds still here: their host died (or Redis is
# away). The ts is the turn's clock, the age is the database's: a few seconds of skew only
# moves when the sweep notices.
_STALE = """
SELECT DISTINCT tenant, kind, entity_id FROM stream_outbox
WHERE ts_ms < (extract(epoch FROM now()) * 1000)::bigint - $1 * 1000
LIMIT $2"""


def sealed(rows: Iterable[OutboxRow], keys: Keyring | None) -> list[tuple]:
    """Rows as stored: content sealed (an event may carry chat text, which is encrypted at
    rest), plus the key's id."""
    if keys is None:
        return [(*row, "") for row in rows]
    stored = []
    for row in rows:
        key_id, content = keys.seal(row[6], _aad(row))
        stored.append((*row[:6], content, *row[7:], key_id))
    return stored


def opened(rows: Iterable[tuple], keys: Keyring | None) -> list[OutboxRow]:
    """Stored rows back as ``OutboxRow``; one that does not open (its key was removed) is
    logged and left out: the message is still in history, only its live copy is lost."""
    found = []
    for *row, key_id in rows:
        if key_id:
            try:
                if keys is None:
                    raise SealError("the journal has no keyring to open it")
                row[6] = keys.open(key_id, row[6], _aad(row))
            except SealError as exc:
                log.error("outbox row %s %s seq %s left unpublished: %s", row[0], row[3],
                          row[4], exc)
                continue
        found.append(tuple(row))
    return found


def _aad(row: Sequence) -> bytes:
    return aad(row[0], "stream_outbox", row[3], str(row[4]))


@dataclass(frozen=True, slots=True)
class Published:
    """An event Redis now has: the outbox row to delete."""

    tenant: str
    kind: str
    entity_id: str
    topic: str
    seq: int


async def stale(pool: asyncpg.Pool, older_than_s: float, limit: int = 10_000) -> list[Key]:
    """Entities whose outbox holds an event older than ``older_than_s``."""
    async with pool.acquire() as conn:
        return [tuple(r) for r in await conn.fetch(_STALE, older_than_s, limit)]


class Outbox:
    """Deletes published rows in batches, every CONFIRM_EVERY_S, off the publish path."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._done: list[tuple[str, str, str, str, int]] = []
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")
        self.deleted = 0
        self.failures = 0

    def confirm(self, published: Iterable[Published]) -> None:
        self._done.extend((p.tenant, p.kind, p.entity_id, p.topic, p.seq) for p in published)

    async def flush(self) -> None:
        """Delete what is confirmed now (a failure keeps it for the next round)."""
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(_DELETE, *columns(done, 5))
        except Exception as exc:
            self.failures += 1
            log.warning("deleting %d published outbox rows failed: %s", len(done), exc)
            self._done[:0] = done
            return
        self.deleted += len(done)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CONFIRM_EVERY_S)
            await self.flush()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.flush()
