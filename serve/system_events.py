"""The ``system`` family from a gateway replica: sockets opening and closing, requests
answered with an error (``rthub.event_catalog``), exported without a socket ever waiting.

Recording one is an append to a bounded deque (the request and close paths pay nothing
else); a background task appends what is queued to the tenants' streams every
``FLUSH_S``, in one round trip (``fanout.exports.export_many``). Redis away: the queue is
kept and tried again with back-off; once it holds ``bound`` events, new ones are dropped
and counted (``rthub_events_dropped_total{family="system"}``). These are facts about one
replica's sockets, not durable in the hub: exported at most once (lost with the replica, or
past the bound; a flush retried after Redis took it without answering appends it again
under the same ``id``, which is what a consumer that must not act twice keys on).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from fanout.exports import Fact, Policy, export_many

if TYPE_CHECKING:
    from serve.connection import Connection

log = logging.getLogger(__name__)

FLUSH_S = 0.1
BATCH_MAX = 2_000  # events per round trip
QUEUE_BOUND = 20_000
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # between attempts while Redis is away


class SystemEvents:
    """A replica's queue of ``system.*`` events and the task that exports them."""

    def __init__(self, redis: Any, policy: Policy | None, gateway: str,
                 bound: int = QUEUE_BOUND) -> None:
        self.redis = redis
        self.policy = policy
        self.gateway = gateway
        self.bound = bound
        # off when the system family is not exported: recording is then a no-op
        self.active = policy is not None and "system" in policy.families
        # (tenant, type, data, ts_ms, n): the id is made from n when it is sent
        self.queue: deque[tuple[str, str, dict[str, Any], int, int]] = deque()
        self.dropped: dict[str, int] = {"system": 0}  # read by the metrics on scrape
        self.exported = 0
        self._numbers = itertools.count(1)
        self._flushing = asyncio.Lock()  # the timer's flush and a drain's last one

    def record(self, tenant: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue one event (dropped and counted when the queue is full)."""
        if not self.active:
            return
        if len(self.queue) >= self.bound:
            self.dropped["system"] += 1
            return
        self.queue.append((tenant, event_type, data, int(time.time() * 1000),
                           next(self._numbers)))

    def connected(self, conn: Connection, resumed: bool) -> None:
        """``conn`` got its welcome: ``system.connect``; its clock starts for the disconnect."""
        conn.welcomed_ms = int(time.time() * 1000)
        self.record(conn.identity.tenant, "system.connect", {
            "user": conn.identity.user, "session_id": conn.session_id,
            "gateway": self.gateway, "resumed": resumed})

    def disconnected(self, conn: Connection) -> None:
        """A welcomed socket ended: ``system.disconnect`` with its close code."""
        self.record(conn.identity.tenant, "system.disconnect", {
            "user": conn.identity.user, "session_id": conn.session_id,
            "gateway": self.gateway, "code": conn.close_code,
            "duration_ms": max(0, int(time.time() * 1000) - conn.welcomed_ms)})

    def failed(self, conn: Connection, request: str, code: str, message: str) -> None:
        """A request of ``conn``'s was answered with an error: ``system.error``."""
        self.record(conn.identity.tenant, "system.error", {
            "user": conn.identity.user, "code": code, "message": message,
            "request": request})

    async def flush(self) -> int:
        """Export the oldest queued events (up to ``BATCH_MAX``); they leave the queue only
        once Redis has them. Raises what Redis raised."""
        queue = self.queue
        if not queue or self.policy is None:
            return 0
        async with self._flushing:
            taken = list(itertools.islice(queue, BATCH_MAX))
            facts = [Fact(tenant, kind, data, ts_ms, f"{self.gateway}.{n}")
                     for tenant, kind, data, ts_ms, n in taken]
            await export_many(self.redis, facts, self.policy)
            for _ in taken:
                queue.popleft()
            self.exported += len(taken)
            return len(taken)

    async def run(self) -> None:
        """Flush every ``FLUSH_S`` (at once again while a full batch went out); back off
        while Redis is away, saying so once per outage."""
        failures = 0
        while True:
            try:
                sent = await self.flush()
            except Exception as exc:
                if failures == 0:
                    log.warning("system events not exported (%d queued; kept, tried again): "
                                "%s", len(self.queue), exc)
                await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
                continue
            if failures:
                log.info("system events exported again after %d failed attempts", failures)
                failures = 0
            if sent < BATCH_MAX:
                await asyncio.sleep(FLUSH_S)
