"""Two hosts that both believe they run one entity (a placement change, a host thought dead
that was only slow): the log's primary key on (entity, version) lets exactly one of them
commit each version, so the stale one can never acknowledge a change made on an old state.
Its write fails, it answers ``unavailable``, reloads, and the retry lands on the new state."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from rthub.errors import Unavailable
from tests.actors.test_runtime import stats

pytestmark = pytest.mark.one_backend  # the runtime, not the server: one PostgreSQL


async def test_a_stale_host_cannot_commit_and_its_retry_sees_the_other_hosts_change(
        make_system, db) -> None:
    first, second = make_system(RTHUB_HOSTS="1"), make_system(RTHUB_HOSTS="1")
    a, b = first.ref("poll", "contested"), second.ref("poll", "contested")
    await a.ask("poll.create", {"user": "owner", "question": "next?", "options": ["x", "y"]})
    assert (await b.ask("poll.open", {"user": "owner"}))["counts"] == [0, 0]  # both active
    await a.ask("poll.vote", {"user": "ann", "option": 0})  # the second host does not know
    with pytest.raises(Unavailable, match="could not persist"):
        await b.ask("poll.vote", {"user": "bob", "option": 1})
    await b.ask("poll.vote", {"user": "bob", "option": 1})  # reloaded: on top of ann's vote
    assert (await a.ask("poll.open", {"user": "owner"}))["counts"] == [1, 0]  # a is stale now
    assert (await b.ask("poll.open", {"user": "owner"}))["counts"] == [1, 1]
    assert (await stats(second, "rthub-host-0"))["persist_failures"] == 1


async def test_racing_writers_through_two_hosts_keep_one_history(make_system, db) -> None:
    """Each voter changes its vote 5 times through one of the two hosts at once: whatever
    interleaving the race takes, the log is one history with every acknowledged vote."""
    first, second = make_system(RTHUB_HOSTS="1"), make_system(RTHUB_HOSTS="1")
    await first.ref("poll", "raced").ask(
        "poll.create", {"user": "owner", "question": "next?", "options": ["x", "y"]})
    acked: list[tuple[str, int]] = []

    async def voter(system, user: str) -> None:
        ref = system.ref("poll", "raced")
        for round_ in range(5):
            for _ in range(50):  # a client's retries, as after any `unavailable`
                try:
                    await ref.ask("poll.vote", {"user": user, "option": round_ % 2})
                except Unavailable:
                    continue
                acked.append((user, round_ % 2))
                break

    await asyncio.gather(*(voter(first if n % 2 else second, f"u{n}") for n in range(20)))
    rows = await db.fetch("SELECT version, event_type, payload FROM entity_log "
                          "WHERE kind = 'poll' AND entity_id = 'raced' ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    votes = [msgpack.unpackb(r["payload"]) for r in rows if r["event_type"] == "Voted"]
    assert sorted((v["user"], v["option"]) for v in votes) == sorted(acked)  # each, once
    assert [v["seq"] for v in votes] == list(range(1, len(votes) + 1))  # one stream, no fork
    assert len(acked) == 100
