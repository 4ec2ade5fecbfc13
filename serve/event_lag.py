"""How far the consumers of the family streams are behind, as Prometheus figures.

The hub never waits for a consumer (``fanout.exports`` trims regardless), so a slow one shows
here and nowhere else: when ``/metrics`` is scraped (at most every ``FRESH_S``; nothing is read
between scrapes), a gateway replica reads each family stream's length
and, per consumer group, the age of the oldest entry not yet handed to it
(``rthub_events_consumer_lag_seconds``, the figure to alert on: it means the same on Redis 6
and 7), the entries it has not been handed (``rthub_events_consumer_lag``, Redis 7 only), those
handed and not acknowledged, and whether entries were trimmed before it read them
(``rthub_events_consumer_behind_retention``: events that group has lost). Every replica reports
the same streams: alert rules take ``max``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from fanout.exports import streams_of

log = logging.getLogger(__name__)

FRESH_S = 2.0  # a sample this recent is served again
TIMEOUT_S = 1.0  # a scrape never waits longer for Redis: the last figures are served
MAX_STREAMS = 20_000  # per sample: tenants x families beyond this are not reported
BATCH = 500  # streams per pipelined round trip


@dataclass(frozen=True, slots=True)
class GroupFigures:
    name: str
    lag: int | None  # None: Redis cannot say (6.x, or deletions in the stream)
    lag_s: float
    pending: int
    behind_retention: bool


@dataclass(frozen=True, slots=True)
class StreamFigures:
    tenant: str
    family: str
    length: int
    groups: tuple[GroupFigures, ...]


def _ms(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.partition("-")[0])


def _id(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


async def sample(redis: Any, now_ms: int | None = None,
                 tenant: str | None = None) -> list[StreamFigures]:
    """The figures of every family stream (up to ``MAX_STREAMS``), or of one tenant's: two
    pipelined round trips per ``BATCH`` streams, so a scrape stays short with thousands."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    named: list[tuple[Any, str, str]] = []
    match = "rthub:x:{*" if tenant is None else f"rthub:x:{{{tenant}:*"
    async for key in redis.scan_iter(match=match, count=1000, _type="stream"):
        if found := streams_of([key]):
            [(owner, family)] = found
            named.append((key, owner, family))
        if len(named) >= MAX_STREAMS:
            break
    figures = []
    for start in range(0, len(named), BATCH):
        figures += await _figures(redis, named[start:start + BATCH], now_ms)
    return figures


async def _figures(redis: Any, named: list[tuple[Any, str, str]],
                   now_ms: int) -> list[StreamFigures]:
    async with redis.pipeline(transaction=False) as pipe:
        for key, _, _ in named:
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            pipe.xinfo_groups(key)
        answers = await pipe.execute(raise_on_error=False)
    streams = []  # a stream gone since the scan (an error answer) is left out
    for at, (key, owner, family) in enumerate(named):
        length, first, groups = answers[3 * at:3 * at + 3]
        if not any(isinstance(a, Exception) for a in (length, first, groups)):
            streams.append((key, owner, family, length, first, groups))
    async with redis.pipeline(transaction=False) as pipe:
        for key, *_, groups in streams:
            for info in groups:  # the entry after the last one handed to the group
                pipe.xrange(key, min=f"({_text(info['last-delivered-id'])}", count=1)
        following = iter(await pipe.execute(raise_on_error=False))
    figures = []
    for _, owner, family, length, first, groups in streams:
        first_id = _id(first[0][0]) if first else None
        figured = []
        for info in groups:
            last, after = info["last-delivered-id"], next(following)
            after = after if isinstance(after, list) else []
            figured.append(GroupFigures(
                _text(info["name"]), info.get("lag"),
                max(0, now_ms - _ms(after[0][0])) / 1000 if after else 0.0,
                int(info["pending"]),
                first_id is not None and _id(last) < first_id and _id(last) != (0, 0)))
        figures.append(StreamFigures(owner, family, int(length), tuple(figured)))
    return figures


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventLag(Collector):
    """The latest sample, as gauges (a collector: tenants and groups come and go)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.figures: list[StreamFigures] = []
        self._sampled = -FRESH_S
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        length = GaugeMetricFamily("rthub_events_stream_length",
                                   "Entries kept in a family stream", labels=["tenant", "family"])
        labels = ["tenant", "family", "group"]
        lag_s = GaugeMetricFamily("rthub_events_consumer_lag_seconds",
                                  "Age of the oldest entry not yet handed to the group",
                                  labels=labels)
        lag = GaugeMetricFamily("rthub_events_consumer_lag",
                                "Entries not yet handed to the group (Redis 7)", labels=labels)
        pending = GaugeMetricFamily("rthub_events_consumer_pending",
                                    "Entries handed to the group and not acknowledged",
                                    labels=labels)
        behind = GaugeMetricFamily("rthub_events_consumer_behind_retention",
                                   "1 when entries were trimmed before the group read them",
                                   labels=labels)
        for stream in self.figures:
            length.add_metric([stream.tenant, stream.family], stream.length)
            for group in stream.groups:
                values = [stream.tenant, stream.family, group.name]
                lag_s.add_metric(values, group.lag_s)
                if group.lag is not None:
                    lag.add_metric(values, group.lag)
                pending.add_metric(values, group.pending)
                behind.add_metric(values, int(group.behind_retention))
        yield from (length, lag_s, lag, pending, behind)

    async def refresh(self, redis: Any) -> None:
        """Sample again unless the last sample is fresh; Redis slow or away: the last figures
        stay (stale beats a scrape that hangs)."""
        if time.monotonic() - self._sampled < FRESH_S:
            return
        self._sampled = time.monotonic()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                self.figures = await sample(redis)
        except Exception as err:  # a scrape must answer
            log.warning("event stream figures not read: %r", err)
