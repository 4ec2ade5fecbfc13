"""An entity's slot in its host's table, and how the table saves and unloads entities:
checkpoints written behind (every CHECKPOINT_EVERY changes or CHECKPOINT_INTERVAL_S seconds,
and on passivation; a failed write is retried and counted) and passivation (an entity is
never unloaded before its checkpoint is saved)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from actors.context import EntityKey
from actors.entity import Deactivation, Entity
from rthub.config import Settings

log = logging.getLogger(__name__)


class Resident:
    """One entity's slot in the table; kept small, there may be 100,000 of them."""

    __slots__ = ("busy", "dirty_since", "entity", "key", "last_active", "mailbox",
                 "saved_version", "version")

    def __init__(self, key: EntityKey) -> None:
        self.key = key
        self.entity: Entity | None = None
        self.version = 0  # events applied
        self.saved_version = 0  # events covered by the stored checkpoint
        self.mailbox: list[tuple[str, Any, asyncio.Future | None]] | None = None
        self.busy = True  # activating, running a turn, or passivating
        self.last_active = 0.0
        self.dirty_since = 0.0


class Checkpointing:
    """Checkpoints and passivation, mixed into ``actors.residency.EntityTable``."""

    settings: Settings
    store: Any
    stats: Any
    clock: Callable[[], float]
    residents: dict[EntityKey, Resident]
    _dirty: dict[EntityKey, Resident]
    _unsaved: dict[EntityKey, tuple[int, bytes]]

    def _spawn(self, coro: Any) -> None: ...

    async def _drain(self, resident: Resident) -> None: ...

    # -- checkpoints -----------------------------------------------------------------------
    def _mark_dirty(self, resident: Resident) -> None:
        queued = self._unsaved.get(resident.key)
        covered = max(resident.saved_version, queued[0] if queued else 0)
        if resident.version - covered >= self.settings.checkpoint_every:
            self._snapshot(resident)
        elif resident.key not in self._dirty:
            resident.dirty_since = self.clock()
            self._dirty[resident.key] = resident

    def checkpoint_lag(self) -> float:
        """Seconds the oldest change not yet checkpointed has waited (a metric)."""
        for resident in self._dirty.values():  # first dirtied first
            return max(self.clock() - resident.dirty_since, 0.0)
        return 0.0

    def _snapshot(self, resident: Resident) -> None:
        """Queue the durable state for the checkpoint writer (called between turns only)."""
        assert resident.entity is not None
        self._unsaved[resident.key] = (resident.version, resident.entity.snapshot())
        self._dirty.pop(resident.key, None)

    async def flush_checkpoints(self, force: bool = False) -> int:
        """Snapshot entities dirty for longer than the interval (all, if ``force``), write
        everything queued, return how many were written."""
        cutoff = float("inf") if force else self.clock() - self.settings.checkpoint_interval_s
        for resident in list(self._dirty.values()):
            if resident.dirty_since > cutoff:
                break
            if not resident.busy:
                self._snapshot(resident)
        if not self._unsaved:
            return 0
        batch, self._unsaved = self._unsaved, {}
        rows = [(*key, version, state) for key, (version, state) in batch.items()]
        try:
            await self.store.save_checkpoints(rows)
        except Exception as exc:
            self.stats.checkpoint_failures += 1
            log.warning("checkpoint of %d entities failed, will retry: %s", len(rows), exc)
            for key, item in batch.items():  # keep for the next try unless superseded
                self._unsaved.setdefault(key, item)
            raise
        for key, (version, _) in batch.items():
            resident = self.residents.get(key)
            if resident is not None:
                resident.saved_version = max(resident.saved_version, version)
        self.stats.checkpoints += len(rows)
        return len(rows)

    # -- passivation -----------------------------------------------------------------------
    async def passivate(self, resident: Resident, reason: Deactivation) -> bool:
        """Checkpoint and unload one entity; False if it got busy or the save failed."""
        if resident.busy or resident.mailbox or self.residents.get(resident.key) is not resident:
            return False
        resident.busy = True
        try:
            if resident.version > resident.saved_version:
                assert resident.entity is not None
                state = resident.entity.snapshot()
                try:
                    await self.store.save_checkpoints([(*resident.key, resident.version, state)])
                except Exception as exc:
                    self.stats.checkpoint_failures += 1
                    log.warning("checkpoint before unloading %s failed: %s", resident.key, exc)
                    return False
                resident.saved_version = resident.version
                self.stats.checkpoints += 1
            if resident.mailbox:  # a message came in while saving: stay
                return False
            assert resident.entity is not None
            resident.entity.on_deactivate(reason)
            del self.residents[resident.key]
            self._dirty.pop(resident.key, None)
            self._unsaved.pop(resident.key, None)
            self.stats.passivations += 1
            return True
        finally:
            if self.residents.get(resident.key) is resident:
                resident.busy = False
                if resident.mailbox:
                    resident.busy = True
                    self._spawn(self._drain(resident))

    async def passivate_idle(self) -> int:
        """Unload entities idle for ENTITY_IDLE_S; return how many."""
        cutoff = self.clock() - self.settings.entity_idle_s
        idle = []
        for resident in self.residents.values():
            if resident.last_active > cutoff:
                break
            idle.append(resident)
        done = await asyncio.gather(*(self.passivate(r, Deactivation.IDLE) for r in idle))
        return sum(done)

    async def passivate_all(self) -> int:
        """Checkpoint and unload everything (graceful host shutdown)."""
        done = await asyncio.gather(*(self.passivate(r, Deactivation.SHUTDOWN)
                                      for r in list(self.residents.values())))
        return sum(done)
