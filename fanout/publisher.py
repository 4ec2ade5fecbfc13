"""Host side of fan-out: broadcasts leave in the order entities made them, in pipelines.

``publish`` only enqueues (a turn never waits on Redis). One task drains the queue in batches
of up to ``BATCH`` events, one pipeline each; a failed batch is retried, with back-off, ahead
of anything newer, so a topic's events never overtake each other. On a Redis Cluster a batch
goes to each node at once (``fanout.streams.publish``): only what a failed node or a moved slot
kept back is retried. The client is made on the first batch (``fanout.connect.aclient`` asks
the server whether it is a cluster), so a host starts while Redis is away and publishes once
it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from redis.exceptions import RedisError

from fanout.connect import Client, aclient
from fanout.exports import Policy
from fanout.streams import StreamEvent, publish


class Outbound(Protocol):
    """What an entity publishes (``actors.entity.Broadcast`` has this shape): fan-out takes
    plain events and knows nothing of entities."""

    topic: str
    type: str
    content: dict[str, Any]
    seq: int | None
    removes: str | None

log = logging.getLogger(__name__)

BATCH = 500


class StreamPublisher:
    """The ``Publisher`` an entity table runs with (see ``actors.residency``).

    ``confirm`` is told, batch by batch, which events Redis now has (the host deletes their
    outbox rows)."""

    def __init__(self, redis_url: str, retention_events: int,
                 confirm: Callable[[Sequence[StreamEvent]], None] | None = None,
                 exports: Policy | None = None) -> None:
        self._url = redis_url
        self._exports = exports  # the family streams the events make, if any
        self._confirm = confirm
        self._client: Client | None = None
        self._retention = retention_events
        self._queue: deque[StreamEvent] = deque()
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="publisher")
        self.published = 0
        self.failures = 0

    def publish(self, tenant: str, broadcasts: Iterable[Outbound],
                source: tuple[str, str] | None = None, ts_ms: int | None = None) -> None:
        """Queue events behind every earlier one; ``source``: the entity (kind, id) whose
        outbox holds them; ``ts_ms``: their time if not now (a republished event keeps its
        own)."""
        ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
        self._queue.extend(StreamEvent(tenant, b.topic, b.seq, b.type, b.content, ts_ms,
                                       b.removes, source) for b in broadcasts)
        self._wakeup.set()

    def pending(self) -> int:
        """Events waiting to be published."""
        return len(self._queue)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                try:
                    if self._client is None:
                        self._client = await aclient(self._url)
                    await publish(self._client, batch, self._retention, self._exports)
                except (RedisError, OSError) as exc:
                    self.failures += 1
                    kept = getattr(exc, "pending", batch)  # a cluster: what did not go out
                    self.published += len(batch) - len(kept)
                    if len(kept) < len(batch):
                        held = {id(event) for event in kept}
                        self._published([e for e in batch if id(e) not in held])
                    log.warning("publishing %d events failed, retrying in %.2fs: %s",
                                len(kept), delay, exc)
                    self._queue.extendleft(reversed(kept))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.05
                self.published += len(batch)
                self._published(batch)

    def _published(self, events: Sequence[StreamEvent]) -> None:
        if self._confirm is not None:
            try:
                self._confirm(events)
            except Exception:  # the rows stay: the events go out again one day, no loss
                log.exception("confirming %d published events failed", len(events))
