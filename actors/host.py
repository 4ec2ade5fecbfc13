"""The host: an async Ray actor that runs an ``EntityTable`` for the entities placed on it.

Ray restarts a dead host (``max_restarts=-1``) by rerunning this constructor only: the table
starts empty and every entity comes back from Postgres on its next message. Calls are never
retried by Ray (``max_task_retries=0``): a caller whose call died gets ``unavailable`` and
retries with its idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from actors.host_metrics import EXPORT_S, HostMetrics
from actors.kinds import KINDS
from actors.placement import host_name
from actors.recommend import Recommendations
from actors.residency import EntityTable, Envelope, Outcome
from fanout.exports import export_policy
from fanout.publisher import StreamPublisher
from rthub.config import Settings
from storage import audit, listening, notifications, playlists
from storage.blobs import open_blob_store
from storage.chat import ChatProjections
from storage.crypto import keyring
from storage.journal import Journal
from storage.outbox import Outbox, Published, stale
from storage.postgres import open_pool
from storage.retention import purge_expired

log = logging.getLogger(__name__)

_ORDER_WAIT_S = 2.0  # longest a batch waits for an earlier one from the same caller


class Host:
    """Ray actor class; create it through ``actors.client.ActorSystem``, never directly."""

    def __init__(self, settings: Settings, name: str) -> None:
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.settings = settings
        self.name = name
        self._table: EntityTable | None = None
        self._starting: asyncio.Task | None = None
        self._next_seq: dict[str, int] = {}
        self._advanced: asyncio.Condition | None = None
        self._loops: list[asyncio.Task] = []
        self.calls = 0  # Ray calls received, and the largest batch one carried
        self.largest_batch = 0
        self._metrics: HostMetrics | None = None

    async def _table_ready(self) -> EntityTable:
        if self._table is None:
            if self._starting is None:
                self._starting = asyncio.get_running_loop().create_task(self._start())
            await asyncio.shield(self._starting)
        assert self._table is not None
        return self._table

    async def _start(self) -> None:
        if self.settings.postgres_url is None:
            raise RuntimeError("a host needs a resolved POSTGRES_URL (the launcher sets it)")
        try:
            pool = await open_pool(self.settings.postgres_url, self.settings.pg_pool_size)
        except BaseException:
            self._starting = None  # the next call tries again
            raise
        self._advanced = asyncio.Condition()
        self.outbox = outbox = Outbox(pool)
        publisher = None
        if self.settings.redis_url is not None:
            publisher = StreamPublisher(
                self.settings.redis_url, self.settings.stream_retention_events,
                lambda events: outbox.confirm(Published(e.tenant, *e.source, e.topic, e.seq)
                                              for e in events if e.source and e.seq),
                export_policy(self.settings))
        blobs = open_blob_store(self.settings.blob_store, self.settings.data_dir,
                                self.settings.s3_endpoint)
        keys = keyring(self.settings.encryption_keys)
        projections = ChatProjections(keys, self.settings.search_language)
        journal = Journal(pool, {**projections.projectors(), **playlists.projectors(),
                                 **notifications.projectors(), **listening.projectors(),
                                 "audit": audit.project}, sealing=keys)
        self.recommendations = Recommendations(self.settings, lambda: _ready(pool))
        self._table = EntityTable(self.settings, KINDS, journal, publisher, services={
            "recommend": self.recommendations.party_service()})
        self._pool = pool
        self._loops = [asyncio.get_running_loop().create_task(coro) for coro in (
            self._every(self.settings.outbox_sweep_s, self.sweep_outbox),
            self._every(min(self.settings.checkpoint_interval_s / 2, 1.0),
                        self._table.flush_checkpoints),
            self._every(min(self.settings.entity_idle_s / 4, 10.0), self._table.passivate_idle),
            self._every(self.settings.retention_sweep_s, lambda: purge_expired(pool, blobs)),
            self._every(EXPORT_S, self._export_metrics),
        )]
        log.info("host %s ready (pid %d)", self.name, os.getpid())

    async def sweep_outbox(self) -> int:
        """Activate this host's entities whose outbox holds events older than
        RTHUB_OUTBOX_SWEEP_S that nobody is publishing (their host died and no message has
        come since): activation publishes them. Returns how many were woken."""
        table = await self._table_ready()
        if table.publisher is None:
            return 0
        keys = await stale(self._pool, self.settings.outbox_sweep_s)
        mine = [key for key in keys if host_name(
            key, self.settings.hosts, self.settings.pinned) == self.name]
        woken = table.wake(mine)
        if woken:
            log.info("outbox sweep: %d entities with unpublished events activated", woken)
        return woken

    async def _export_metrics(self) -> None:
        if self._metrics is None:
            self._metrics = HostMetrics(self.name, self.settings.namespace)
        self._metrics.export(await self.stats(), self.recommendations.outcomes)

    async def _every(self, period: float, job: Any) -> None:
        """Run ``job`` every ``period`` s; after a failure back off up to 30 s (it logged why)."""
        delay = period
        while True:
            await asyncio.sleep(delay)
            try:
                await job()
                delay = period
            except Exception:
                delay = min(max(delay * 2, period), 30.0)

    async def deliver(self, caller: str, seq: int, floor: int, batch: list[Envelope],
                      sheddable: list[int] | None = None) -> list[Outcome | None]:
        """Run a batch; replies line up with ``batch`` (None for tells).

        A caller numbers its calls (``seq``) and says which is the oldest still unanswered
        (``floor``); the batch is enqueued only after those between ``floor`` and ``seq``.
        ``sheddable``: positions of client requests the host may refuse at its bounds.
        """
        self.calls += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        table = await self._table_ready()
        await self._wait_turn(caller, seq, floor)
        futures = table.deliver(batch, sheddable or ())
        self._next_seq[caller] = max(self._next_seq.get(caller, 0), seq + 1)
        assert self._advanced is not None
        async with self._advanced:
            self._advanced.notify_all()
        return [None if f is None else await f for f in futures]

    async def _wait_turn(self, caller: str, seq: int, floor: int) -> None:
        expected = self._next_seq[caller] = max(self._next_seq.get(caller, floor), floor)
        if seq <= expected:
            return
        assert self._advanced is not None
        try:
            async with self._advanced:
                await asyncio.wait_for(
                    self._advanced.wait_for(lambda: self._next_seq[caller] >= seq), _ORDER_WAIT_S)
        except TimeoutError:  # the earlier call died with a previous incarnation: go on
            log.warning("batch %d from %s ran without its predecessor", seq, caller)

    async def stats(self) -> dict[str, Any]:
        table = await self._table_ready()
        journal = table.store
        return {
            "name": self.name,
            "pid": os.getpid(),
            "residents": len(table.residents),
            "rss_bytes": _rss_bytes(),
            "calls": self.calls,
            "largest_batch": self.largest_batch,
            "log_commits": getattr(getattr(journal, "writer", None), "commits", 0),
            "published": getattr(table.publisher, "published", 0),
            "publish_failures": getattr(table.publisher, "failures", 0),
            "publish_backlog": table.publisher.pending() if table.publisher else 0,
            "outbox_deleted": self.outbox.deleted,
            "journal_backlog": journal.backlog(),  # events waiting for the group commit
            "mailbox_depth": sum(len(r.mailbox or ()) for r in table.residents.values()),
            "checkpoint_lag_s": table.checkpoint_lag(),
            **{field: getattr(table.stats, field) for field in table.stats.__slots__},
        }

    async def flush(self, force: bool = True) -> int:
        """Write queued checkpoints now; with ``force``, snapshot every dirty entity first."""
        return await (await self._table_ready()).flush_checkpoints(force=force)

    async def passivate_idle(self) -> int:
        return await (await self._table_ready()).passivate_idle()

    async def shutdown(self) -> int:
        """Checkpoint and unload every entity; the host stays up and can take messages again."""
        return await (await self._table_ready()).passivate_all()


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _ready(pool: Any) -> Any:
    return pool
