"""The notification queue and dispatcher on a real PostgreSQL, without Ray: priority order
under a full queue, retries with backoff and their limit, a dead dispatcher's claims taken
over, idempotency keys, the queue bound, and delivery states that only move forward."""

from __future__ import annotations

import asyncio
import random

import pytest

from notify import dispatcher as dispatching
from notify.dispatcher import Dispatcher, backoff_s
from rthub.errors import BadRequest, RateLimited, Unavailable
from storage import notifications as store
from storage.postgres import open_pool


@pytest.fixture
async def pool(pg_url):
    pool = await open_pool(pg_url, 8)
    yield pool
    await pool.close()


async def enqueue(pool, priority: int, title: str, key: str | None = None, limit: int = 1000):
    note = {"user_id": "ana", "category": "social", "priority": priority, "title": title,
            "body": "body", "data": {}, "idempotency_key": key, "channels": ["in_app"]}
    return await store.enqueue(pool, "t", note, limit)


class Recorder:
    """A channel that records what it was given, and can be held or made to fail."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures: dict[str, list[Exception]] = {}
        self.done = asyncio.Condition()

    async def __call__(self, row) -> None:
        await self.gate.wait()
        planned = self.failures.get(row["title"])
        if planned:
            raise planned.pop(0)
        async with self.done:
            self.order.append(row["title"])
            self.done.notify_all()

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(30), self.done:
            await self.done.wait_for(lambda: len(self.order) >= count)
        return self.order


async def status_becomes(pool, ident: str, wanted: str) -> dict:
    """The notification once its status is ``wanted`` (state in PostgreSQL: polled)."""
    async with asyncio.timeout(15):
        while (found := await store.status(pool, "t", ident))["status"] != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return found


async def running(dispatcher: Dispatcher):
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)
    return task


async def test_a_critical_one_overtakes_every_low_one_still_waiting(pool):
    channel = Recorder()
    channel.gate.clear()  # the first claims are held in flight
    for n in range(40):
        await enqueue(pool, 0, f"low{n}")
    task = await running(Dispatcher(pool, channel, workers=2))
    try:
        async with asyncio.timeout(10):  # the dispatcher has claimed its fill (polled)
            while await pool.fetchval(  # noqa: ASYNC110
                    "SELECT count(*) FROM notifications WHERE attempts > 0") < 4:
                await asyncio.sleep(0.01)
        await enqueue(pool, 3, "critical")
        await enqueue(pool, 2, "high")
        channel.gate.set()
        order = await channel.wait_for(42)
    finally:
        task.cancel()
    # at most the two in flight and the four claimed into memory went before it
    assert order.index("critical") <= 6
    assert order.index("critical") < order.index("high") < order.index("low39")
    assert sorted(order) == sorted([*(f"low{n}" for n in range(40)), "critical", "high"])


async def test_retryable_failures_are_retried_then_sent_and_permanent_ones_fail(pool,
                                                                                monkeypatch):
    monkeypatch.setattr(dispatching, "BACKOFF_BASE_S", 0.01)
    channel = Recorder()
    channel.failures = {"flaky": [Unavailable("host restarting"), Unavailable("again")],
                        "broken": [BadRequest("the inbox refused it")]}
    flaky, _ = await enqueue(pool, 1, "flaky")
    broken, _ = await enqueue(pool, 1, "broken")
    task = await running(Dispatcher(pool, channel, workers=2))
    try:
        assert await channel.wait_for(1) == ["flaky"]
        failed = await status_becomes(pool, broken["id"], "failed")
        sent = await status_becomes(pool, flaky["id"], "done")
    finally:
        task.cancel()
    assert sent["attempts"] == 3
    assert failed["attempts"] == 1  # not retried
    assert failed["error"] == "BadRequest: the inbox refused it"
    assert failed["channels"]["in_app"]["state"] == "failed"


async def test_retries_stop_at_the_limit(pool, monkeypatch):
    monkeypatch.setattr(dispatching, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setattr(dispatching, "MAX_ATTEMPTS", 3)
    channel = Recorder()
    channel.failures = {"down": [Unavailable("down")] * 10}
    note, _ = await enqueue(pool, 1, "down")
    task = await running(Dispatcher(pool, channel, workers=1))
    try:
        failed = await status_becomes(pool, note["id"], "failed")
    finally:
        task.cancel()
    assert failed["attempts"] == 3
    assert len(channel.failures["down"]) == 7


def test_backoff_is_full_jitter_under_a_doubling_cap():
    rng = random.Random(1)
    delays = [backoff_s(attempt, rng) for attempt in range(12) for _ in range(50)]
    assert all(0 <= d <= dispatching.BACKOFF_CAP_S for d in delays)
    assert max(backoff_s(2, rng) for _ in range(200)) <= dispatching.BACKOFF_BASE_S * 4
    assert min(backoff_s(8, rng) for _ in range(200)) < 1  # full jitter reaches down to 0


async def test_a_dead_dispatchers_claims_are_taken_over_after_the_lease(pool):
    note, _ = await enqueue(pool, 1, "orphan")
    (claimed,) = await store.claim(pool, 10, 60)  # a dispatcher claims it, then dies
    assert claimed["id"] == note["id"]
    assert await store.claim(pool, 10, 60) == []  # leased: nobody else takes it yet
    # the lease runs out (set in SQL: a short real lease could lapse between two queries)
    await pool.execute("UPDATE notifications SET due_at = now() WHERE tenant = $1 AND id = $2",
                       claimed["tenant"], claimed["id"])
    channel = Recorder()
    task = await running(Dispatcher(pool, channel, workers=1))
    try:
        assert await channel.wait_for(1) == ["orphan"]
    finally:
        task.cancel()


async def test_an_idempotency_key_returns_the_first_result_and_the_queue_is_bounded(pool):
    first, new = await enqueue(pool, 1, "once", key="k1")
    again, repeated = await enqueue(pool, 1, "once", key="k1")
    assert (new, repeated, again["id"]) == (True, False, first["id"])
    await enqueue(pool, 1, "two", limit=3)
    with pytest.raises(RateLimited, match=r"the notification queue is full \(2 waiting\)"):
        await enqueue(pool, 1, "three", limit=2)
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 2


async def test_a_channels_state_only_moves_forward(pool):
    note, _ = await enqueue(pool, 1, "n")
    async with pool.acquire() as conn:
        for state in ("delivered", "read", "seen", "delivered"):
            await store.set_delivery(conn, [{"tenant": "t", "id": note["id"],
                                             "channel": "in_app", "state": state,
                                             "at_ms": 1_000}])
    assert (await store.status(pool, "t", note["id"]))["channels"]["in_app"]["state"] == "read"


async def test_a_batch_is_accepted_whole_or_not_at_all_and_keys_hold_across_batches(pool):
    def note(title: str, key: str | None = None) -> dict:
        return {"user_id": "ana", "category": "c", "priority": 1, "title": title,
                "body": "", "data": {}, "idempotency_key": key, "channels": ["in_app"]}

    first = await store.enqueue_many(pool, "t", [note("a", "k1"), note("b"), note("a", "k1")],
                                     10)
    assert [a["status"] for a in first] == ["queued", "queued", "accepted before"]
    assert first[0]["id"] == first[2]["id"]  # one key twice in a batch: one notification
    again = await store.enqueue_many(pool, "t", [note("a", "k1"), note("c")], 10)
    assert (again[0], again[1]["status"]) == ({"id": first[0]["id"],
                                               "status": "accepted before"}, "queued")
    with pytest.raises(RateLimited, match=r"full \(3 of 4 waiting; this batch has 2\)"):
        await store.enqueue_many(pool, "t", [note("d"), note("e")], 4)
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 3
