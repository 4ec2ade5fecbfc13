"""The entity journal: batched loads, a group-commit log writer, batched checkpoint upserts.

Every call here is shaped for batches, because a host activates and persists many entities at
once: one query loads any number of entities, one transaction appends the events of every
entity that persisted since the last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage import outbox
from storage.crypto import Keyring
from storage.outbox import OutboxRow
from storage.postgres import columns

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (tenant, kind, entity_id)
LogRow = tuple[str, str, str, int, str, bytes]  # key + (version, event_type, payload)
Projection = tuple[str, dict[str, Any]]  # (projector name, row)
Projector = Callable[[asyncpg.Connection, list[dict[str, Any]]], Awaitable[None]]


@dataclass(slots=True)
class Loaded:
    """What activation needs: the last checkpoint, the log after it, and the stream events
    committed and not yet published (``storage.outbox``)."""

    version: int = 0
    state: bytes | None = None
    events: list[tuple[int, str, bytes]] = field(default_factory=list)
    unpublished: list[OutboxRow] = field(default_factory=list)


_LOAD_CHECKPOINTS = """
SELECT c.tenant, c.kind, c.entity_id, c.version, c.state
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, kind, entity_id)
JOIN entity_checkpoints c USING (tenant, kind, entity_id)"""

_LOAD_LOG = """
SELECT l.tenant, l.kind, l.entity_id, l.version, l.event_type, l.payload
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(tenant, kind, entity_id, after)
JOIN entity_log l ON l.tenant = k.tenant AND l.kind = k.kind AND l.entity_id = k.entity_id
                 AND l.version > k.after
ORDER BY l.tenant, l.kind, l.entity_id, l.version"""

_APPEND = """
INSERT INTO entity_log (tenant, kind, entity_id, version, event_type, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[])"""

_SAVE_CHECKPOINTS = """
INSERT INTO entity_checkpoints AS c (tenant, kind, entity_id, version, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])
ON CONFLICT (tenant, kind, entity_id) DO UPDATE
    SET version = EXCLUDED.version, state = EXCLUDED.state, saved_at = now()
    WHERE c.version < EXCLUDED.version"""


async def load(pool: asyncpg.Pool, keys: Sequence[Key], sealing: Keyring | None = None
               ) -> dict[Key, Loaded]:
    """Checkpoint + later log rows + unpublished stream events for every key, in three
    queries whatever the count."""
    found = {key: Loaded() for key in keys}
    async with pool.acquire() as conn:
        for t, k, i, version, state in await conn.fetch(_LOAD_CHECKPOINTS, *columns(keys, 3)):
            found[(t, k, i)] = Loaded(version, state)
        after = [(*key, loaded.version) for key, loaded in found.items()]
        for t, k, i, version, event_type, payload in await conn.fetch(
            _LOAD_LOG, *columns(after, 4)
        ):
            found[(t, k, i)].events.append((version, event_type, payload))
        for row in outbox.opened(await conn.fetch(outbox.LOAD, *columns(keys, 3)), sealing):
            found[(row[0], row[1], row[2])].unpublished.append(row)
    return found


async def save_checkpoints(pool: asyncpg.Pool, rows: Sequence[tuple[str, str, str, int, bytes]]
                           ) -> None:
    """Upsert checkpoints; an older version never overwrites a newer one."""
    async with pool.acquire() as conn:
        await conn.execute(_SAVE_CHECKPOINTS, *columns(rows, 5))


@dataclass(slots=True)
class Appended:
    """One ``append``: its log rows, projection rows and outbox rows, and who waits."""

    rows: list[LogRow]
    projections: list[Projection]
    unpublished: list[tuple]  # OutboxRow + key id, content sealed
    future: asyncio.Future[None]


class LogWriter:
    """Group commit: appends queued while a transaction runs share the next one, with
    their projections and their outbox rows (``storage.outbox``).

    ``append`` returns a future resolved when the rows are committed. If a group fails (a
    version conflict from a stale host, say), each append in it is retried on its own, so one
    bad append never fails the others.
    """

    def __init__(self, pool: asyncpg.Pool, projectors: Mapping[str, Projector] | None = None,
                 max_rows: int = 10_000, sealing: Keyring | None = None) -> None:
        self._pool = pool
        self._sealing = sealing
        self._projectors = projectors or {}
        self._max_rows = max_rows
        self._queue: deque[Appended] = deque()
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-writer")
        self.commits = 0
        self.rows = 0
        self.backlog = 0  # rows appended and not yet committed (admission control reads it)

    def append(self, rows: list[LogRow], projections: Sequence[Projection] = (),
               unpublished: Sequence[OutboxRow] = ()) -> asyncio.Future[None]:
        """Queue rows (their projection rows, their stream events) for the next commit;
        resolved when durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(Appended(rows, list(projections),
                                    outbox.sealed(unpublished, self._sealing), future))
        self.backlog += len(rows)
        self._wakeup.set()
        return future

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                group, size = [], 0
                while self._queue and (
                    not group or size + len(self._queue[0].rows) <= self._max_rows
                ):
                    item = self._queue.popleft()
                    group.append(item)
                    size += len(item.rows)
                try:
                    await self._commit(group)
                finally:
                    self.backlog -= size

    async def _commit(self, group: list[Appended]) -> None:
        rows = [row for item in group for row in item.rows]
        projections = [p for item in group for p in item.projections]
        unpublished = [u for item in group for u in item.unpublished]
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(_APPEND, *columns(rows, 6))
                if unpublished:
                    await conn.execute(outbox.INSERT, *columns(unpublished, 10))
                await _project(conn, self._projectors, projections)
        except Exception as exc:  # one bad append (or projector) must not stop the writer
            if len(group) == 1:
                _settle(group[0].future, exc)
                return
            log.warning("group commit of %d appends failed (%s); retrying one by one",
                        len(group), exc)
            for item in group:
                await self._commit([item])
            return
        self.commits += 1
        self.rows += len(rows)
        for item in group:
            _settle(item.future, None)


async def _project(conn: asyncpg.Connection, projectors: Mapping[str, Projector],
                   projections: list[Projection]) -> None:
    """Hand projection rows to their projectors in log order, a run of one kind at a time
    (a message posted then deleted in one commit must be inserted before it is deleted)."""
    start = 0
    while start < len(projections):
        name = projections[start][0]
        end = start
        while end < len(projections) and projections[end][0] == name:
            end += 1
        projector = projectors.get(name)
        if projector is None:
            raise ValueError(f"no projector {name!r} is registered with the journal")
        await projector(conn, [row for _, row in projections[start:end]])
        start = end


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


class Journal:
    """The Postgres store an entity table runs on: loads, group-committed appends, checkpoints."""

    def __init__(self, pool: asyncpg.Pool, projectors: Mapping[str, Projector] | None = None,
                 sealing: Keyring | None = None) -> None:
        self.pool = pool
        self.sealing = sealing  # seals outbox rows (stream events may carry chat text)
        self.writer = LogWriter(pool, projectors, sealing=sealing)

    async def load(self, keys: Sequence[Key]) -> dict[Key, Loaded]:
        return await load(self.pool, keys, self.sealing)

    def append(self, rows: list[LogRow], projections: Sequence[Projection] = (),
               unpublished: Sequence[OutboxRow] = ()) -> asyncio.Future[None]:
        return self.writer.append(rows, projections, unpublished)

    def backlog(self) -> int:
        """Events waiting for the group commit."""
        return self.writer.backlog

    async def save_checkpoints(self, rows: Sequence[tuple[str, str, str, int, bytes]]) -> None:
        await save_checkpoints(self.pool, rows)

    async def close(self) -> None:
        await self.writer.close()
        await self.pool.close()
