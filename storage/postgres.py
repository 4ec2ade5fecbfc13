"""Connection pools and versioned migrations.

Migrations are the ``storage/migrations/NNNN_name.sql`` files, applied in order, each in its own
transaction, under an advisory lock so that hosts starting together apply each one once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x72746875  # "rthu": one advisory lock id for the whole hub


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(number), name, entry.read_text()))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations this database lacks; return the versions applied now."""
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied_now.append(version)
            log.info("applied migration %04d_%s", version, name)
    return applied_now


async def _keep(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: the hub holds no session state on one
    (advisory locks are transaction-scoped; no LISTEN, SET or cursor outlives a
    transaction), so asyncpg's reset (a round trip of four statements on every release, one
    per group commit) is skipped. An unfinished transaction is still rolled back by asyncpg."""


async def open_pool(url: str, size: int) -> asyncpg.Pool:
    """A pool on ``url`` with the schema brought up to date."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=size, reset=_keep)
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


def columns(rows: Sequence[tuple], width: int) -> list[list]:
    """Rows as ``width`` column lists: what ``unnest($1::t[], ...)`` takes, one query for
    any number of rows."""
    return [[row[i] for row in rows] for i in range(width)]
