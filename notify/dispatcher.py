"""The dispatcher: takes accepted notifications from the durable queue, highest priority
first, and delivers each to the user's channels.

Claims go into an in-memory priority queue that the workers take from, so a CRITICAL
notification claimed while LOW ones wait in memory is the next one a worker starts. A claim
is a lease: a dispatcher that dies mid-send leaves its claims due again, and the in-app
channel is idempotent by notification id, so nothing accepted is lost or shown twice. A
failure the channel may recover from is retried with exponential backoff and full jitter,
up to ``MAX_ATTEMPTS``; any other is final (``failed``, with the error, on the notification
and the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from rthub.errors import HubError, Overloaded, Unavailable
from storage import notifications as store

log = logging.getLogger(__name__)

LEASE_S = 60.0  # a claim not finished by then is due again
POLL_S = 1.0  # besides NOTIFY: retries come due without one
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 300.0



@dataclass(frozen=True, slots=True)
class Later:
    """What ``deliver`` returns when some channel must wait: bring the notification back
    after ``delay_s``. ``counted``: the wait is a failure's backoff (it counts towards the
    notification's attempts); ``handled``: the deliverer already rescheduled it."""

    delay_s: float
    reason: str
    counted: bool = False
    handled: bool = False


Deliver = Callable[[dict[str, Any]], Awaitable["Later | None"]]


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform between 0 and the exponential step (AWS's "full jitter")."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))


def retryable(error: Exception) -> bool:
    """Worth another try: the entity's host restarting or refusing load, a timeout, a
    connection that dropped."""
    if isinstance(error, Unavailable | Overloaded):
        return True
    return not isinstance(error, HubError) and isinstance(error, OSError | TimeoutError)


class Dispatcher:
    """One dispatcher: ``workers`` deliveries at a time, from a priority queue it keeps full."""

    def __init__(self, pool: asyncpg.Pool, deliver: Deliver, workers: int = 16,
                 rng: random.Random | None = None) -> None:
        self.pool = pool
        self.deliver = deliver
        self.workers = workers
        self.rng = rng or random.Random()
        self._heap: list[tuple[int, int, int, dict[str, Any]]] = []
        self._order = itertools.count()
        self._ready = asyncio.Condition()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._done: list[tuple[str, str]] = []  # delivered, to be marked in one statement
        self._digests: set[tuple[str, str]] = set()  # digests claimed or being sent
        self.sent = 0
        self.failed = 0
        self.retried = 0

    async def run(self) -> None:
        """Claim and deliver until cancelled."""
        listener = await self.pool.acquire()
        await listener.add_listener(store.WAKE, self._woken)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        try:
            while True:
                try:
                    await self._record_done()
                    await self._fill()
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("claiming notifications failed, retrying: %s", exc)
                    await asyncio.sleep(POLL_S)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
        finally:
            for task in self._tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await listener.remove_listener(store.WAKE, self._woken)
            await self.pool.release(listener)

    def _woken(self, *_: Any) -> None:
        self._wake.set()

    async def _fill(self) -> None:
        """Claim what fits: twice the workers in memory at most (claims are leases)."""
        room = 2 * self.workers - len(self._heap)
        if room <= 0:
            return
        rows = await store.claim(self.pool, room, LEASE_S)
        if not rows:
            return
        async with self._ready:
            for row in rows:
                if row.get("digest_key"):  # a digest is sent once, by one of its members
                    digest = (row["tenant"], row["digest_key"])
                    if digest in self._digests:
                        continue  # leased meanwhile; its leader sends and finishes it
                    self._digests.add(digest)
                heapq.heappush(self._heap, (-row["priority"], row["created_ms"],
                                            next(self._order), row))
            self._ready.notify(len(rows))
        if len(rows) == room:
            self._wake.set()  # more may be due

    async def _work(self) -> None:
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._heap))
                _, _, _, row = heapq.heappop(self._heap)
            try:
                await self._handle(row)
            except (OSError, asyncpg.PostgresError) as exc:  # its lease brings it back
                log.warning("recording notification %s failed: %s", row["id"], exc)
            finally:
                if row.get("digest_key"):
                    self._digests.discard((row["tenant"], row["digest_key"]))
            self._wake.set()  # room for another claim

    async def _handle(self, row: dict[str, Any]) -> None:
        tenant, ident = row["tenant"], row["id"]
        try:
            later = await self.deliver(row)
        except Exception as exc:  # a channel's failure: retried or final, never lost
            reason = f"{type(exc).__name__}: {exc}"
            if retryable(exc) and row["attempts"] < MAX_ATTEMPTS:
                self.retried += 1
                delay = backoff_s(row["attempts"], self.rng)
                log.info("notification %s failed (%s); retry in %.1fs", ident, reason, delay)
                await store.retry_at(self.pool, tenant, ident, delay, reason)
                return
            self.failed += 1
            log.warning("notification %s failed for good: %s", ident, reason)
            at_ms = int(time.time() * 1000)
            async with self.pool.acquire() as conn:
                await store.set_delivery(conn, [
                    {"tenant": tenant, "id": ident, "channel": channel, "state": "failed",
                     "error": reason, "at_ms": at_ms}
                    for channel, (state, _) in row.get("channels", {}).items()
                    if state == "queued"])
            await store.finish(self.pool, tenant, ident, reason)
            return
        if later is not None:
            if not later.handled:
                await store.retry_at(self.pool, tenant, ident, later.delay_s, later.reason,
                                     counted=later.counted)
            return
        self.sent += 1
        self._done.append((tenant, ident))  # marked by the loop, many at a time: a crash
        # before that leaves it leased, then sent again, and the channel drops the repeat

    async def _record_done(self) -> None:
        if self._done:
            done, self._done = self._done, []
            try:
                await store.finish_many(self.pool, done)
            except BaseException:
                self._done.extend(done)
                raise
