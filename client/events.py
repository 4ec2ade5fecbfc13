"""Consume the hub's event streams (``rthub.event_catalog``) from another service.

A consumer group shares a family's stream among its consumers: each entry goes to one of them
(``XREADGROUP``) and stays pending until acknowledged (``XACK``). A consumer that dies holding
entries loses nothing: after ``claim_idle_ms`` another one of the group takes them over
(``XAUTOCLAIM``), and a consumer that restarts under its old name first reads what it held.
So every event is handled at least once, and exactly once for a consumer that acks after its
work and keys on ``event.id`` (stable across the hub's republishes)::

    async with EventConsumer(redis_url, "default", "music", group="trainer") as events:
        async for event in events:
            train(event)
            await events.ack(event)

Entries the hub trimmed before the group read them (a consumer slower than the retention) are
gone; ``trimmed`` counts those a consumer held, or claimed, when they went.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from rthub.event_catalog import FAMILIES, Exported, SchemaError, parse

log = logging.getLogger(__name__)


def stream_key(tenant: str, family: str) -> str:
    """The family stream of a tenant (``fanout.exports.family_key`` writes it)."""
    return "rthub:x:{" + f"{tenant}:{family}" + "}"


async def connect(url: str) -> Any:
    """A client of ``url``: a cluster-aware one when the server is a Redis Cluster node (its
    keys are spread over nodes; a plain client would be answered MOVED)."""
    import redis.asyncio as aioredis  # only a consumer needs redis-py
    from redis.asyncio.cluster import RedisCluster

    plain = aioredis.from_url(url)
    try:
        clustered = (await plain.info("cluster")).get("cluster_enabled")
    except Exception:
        await plain.aclose()
        raise
    if not clustered:
        return plain
    await plain.aclose()
    return RedisCluster.from_url(url)


class EventConsumer:
    """One consumer of a group over one tenant's family stream.

    ``group=None`` reads without a group (a tail: nothing acknowledged, nothing shared), from
    ``start`` (``"$"`` new entries only, ``"0"`` everything kept). A new group starts at
    ``start`` too."""

    def __init__(self, redis_url: str, tenant: str, family: str, group: str | None = None,
                 consumer: str | None = None, start: str = "$", claim_idle_ms: int = 30_000,
                 count: int = 100, block_ms: int = 1000) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        self.url = redis_url
        self.redis: Any = None  # connected on entering: a single Redis or a cluster's client
        self.key = stream_key(tenant, family)
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self.start = start
        self.claim_idle_ms = claim_idle_ms
        self.count = count
        self.block_ms = block_ms
        self.invalid = 0  # entries that did not match their schema (acknowledged, logged)
        self.trimmed = 0  # pending entries found trimmed (acknowledged: nothing to hand out)
        self._last = start  # a tail's position
        self._own_pending = True  # after a restart: read what this name held first
        self._claim_from = "0-0"

    async def __aenter__(self) -> EventConsumer:
        self.redis = await connect(self.url)
        if self.group is not None:
            with contextlib.suppress(Exception):  # BUSYGROUP: it exists
                await self.redis.xgroup_create(self.key, self.group, id=self.start,
                                               mkstream=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.redis.aclose()

    def __aiter__(self) -> AsyncIterator[Exported]:
        return self._events()

    async def _events(self) -> AsyncIterator[Exported]:
        while True:
            for entry_id, fields in await self.read():
                try:
                    event = parse(entry_id, fields)
                except SchemaError as err:  # logged, acknowledged: never handed out again
                    self.invalid += 1
                    log.warning("skipping entry %s of %s: %s", entry_id, self.key, err)
                    if self.group is not None:
                        await self.redis.xack(self.key, self.group, entry_id)
                    continue
                yield event

    async def read(self) -> list[tuple[Any, dict]]:
        """The next entries: this consumer's own pending ones after a restart, then those a
        dead consumer held too long, then new ones (waiting up to ``block_ms``)."""
        if self.group is None:
            reply = await self.redis.xread({self.key: self._last}, count=self.count,
                                           block=self.block_ms)
            entries = reply[0][1] if reply else []
            if entries:
                self._last = entries[-1][0]
            return entries
        if self._own_pending:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {self.key: "0"},
                                                count=self.count)
            entries = await self._kept(reply[0][1] if reply else [])
            if entries:
                return entries
            self._own_pending = False
        claimed = await self._claim()
        if claimed:
            return claimed
        reply = await self.redis.xreadgroup(self.group, self.consumer, {self.key: ">"},
                                            count=self.count, block=self.block_ms)
        return reply[0][1] if reply else []

    async def _claim(self) -> list[tuple[Any, dict]]:
        """Entries idle past ``claim_idle_ms`` in other consumers' hands (they died)."""
        reply = await self.redis.xautoclaim(self.key, self.group, self.consumer,
                                            self.claim_idle_ms, self._claim_from,
                                            count=self.count)
        self._claim_from = reply[0] if reply[0] not in (b"0-0", "0-0") else "0-0"
        return await self._kept(reply[1])

    async def _kept(self, entries: list) -> list[tuple[Any, dict]]:
        """Pending entries still in the stream; those trimmed meanwhile are acknowledged
        (Redis 6 lists them without fields; 7 drops them from the claim itself)."""
        gone = [e[0] for e in entries if not e[1]]
        if gone:
            self.trimmed += len(gone)
            await self.redis.xack(self.key, self.group, *gone)
        return [e for e in entries if e[1]]

    async def ack(self, *events: Exported) -> None:
        """The events are handled: the group never hands them out again."""
        if self.group is not None and events:
            await self.redis.xack(self.key, self.group, *(e.entry_id for e in events))

    async def lag(self) -> int | None:
        """Entries of the stream the group has not been handed yet (None: Redis cannot
        say, e.g. Redis 6)."""
        for info in await self.redis.xinfo_groups(self.key):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == self.group:
                return info.get("lag")
        return None
