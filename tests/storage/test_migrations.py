"""Versioned migrations on a real PostgreSQL (embedded and external)."""

import asyncio

import asyncpg
import pytest

from storage.postgres import migrate, migration_files


async def test_migrations_apply_once_and_record_their_versions(db):
    shipped = [version for version, _, _ in migration_files()]
    assert await migrate(db) == shipped
    assert await migrate(db) == []
    recorded = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == shipped
    assert recorded[0]["name"] == "entities"


async def test_hosts_starting_together_apply_each_migration_once(pg_url):
    conns = [await asyncpg.connect(pg_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(len(a) for a in applied) == [0, 0, 0, len(migration_files())]


async def test_the_entity_log_refuses_to_be_rewritten(db):
    await migrate(db)
    await db.execute("INSERT INTO entity_log (tenant, kind, entity_id, version, event_type, "
                     "payload) VALUES ('t', 'k', 'e', 1, 'E', '\\x00')")
    with pytest.raises(asyncpg.RaiseError, match="entity_log is append-only"):
        await db.execute("UPDATE entity_log SET payload = '\\x01'")
