"""The journal: group commit, isolation of a bad append, batched loads."""

import asyncio

import asyncpg
import pytest

from storage.journal import Journal
from storage.postgres import open_pool


@pytest.fixture
async def journal(pg_url):
    pool = await open_pool(pg_url, 4)
    journal = Journal(pool)
    yield journal
    await journal.close()


def rows(entity: str, versions: range) -> list[tuple]:
    return [("t", "k", entity, v, "E", bytes([v % 256])) for v in versions]


async def test_concurrent_appends_share_transactions_and_all_land(journal, db):
    appends = [journal.append(rows(f"e{i}", range(1, 4))) for i in range(300)]
    await asyncio.gather(*appends)
    assert await db.fetchval("SELECT count(*) FROM entity_log") == 900
    assert journal.writer.commits < 300  # grouped, not one transaction per append


async def test_a_conflicting_append_fails_alone(journal, db):
    await journal.append(rows("taken", range(1, 2)))
    results = await asyncio.gather(
        journal.append(rows("a", range(1, 3))),
        journal.append(rows("taken", range(1, 2))),  # version 1 exists: a stale writer
        journal.append(rows("b", range(1, 3))),
        return_exceptions=True,
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], asyncpg.UniqueViolationError)
    assert await db.fetchval("SELECT count(*) FROM entity_log WHERE entity_id IN ('a','b')") == 4


async def test_load_returns_the_checkpoint_and_only_the_log_after_it(journal):
    await journal.append(rows("e1", range(1, 8)))
    await journal.save_checkpoints([("t", "k", "e1", 5, b"state@5")])
    await journal.save_checkpoints([("t", "k", "e1", 3, b"older")])  # never goes backwards
    loaded = await journal.load([("t", "k", "e1"), ("t", "k", "new")])
    assert loaded[("t", "k", "e1")].version == 5
    assert loaded[("t", "k", "e1")].state == b"state@5"
    assert [v for v, _, _ in loaded[("t", "k", "e1")].events] == [6, 7]
    assert loaded[("t", "k", "new")].state is None
    assert loaded[("t", "k", "new")].events == []
