"""Entities resident in one host: mailboxes, activation, persistence, checkpoints, passivation.

No Ray here: a host actor wraps this table, and tests can drive it directly. Guarantees:

* One message at a time per entity, in arrival order. A worker drains an entity's mailbox in
  turns of up to MESSAGE_BATCH_SIZE messages; handlers of a turn run back to back.
* Durable before visible. A turn's events are appended to the log (group commit, shared with
  every other entity's turn) before any of its replies is released. If the append fails, the
  turn's replies become ``unavailable`` and the entity is dropped from memory, so the next
  message reloads exactly what is durable.
* Activation = checkpoint + log replay, loaded for all entities of a delivery in two queries.
* Bounded intake. Client messages (the caller marks them ``sheddable``) are refused before
  they run, ``unavailable`` with ``retry_after_ms``, when their entity's mailbox holds
  RTHUB_MAILBOX_LIMIT messages or RTHUB_JOURNAL_QUEUE_LIMIT events wait for the group commit;
  the runtime's own messages (timers, service answers, leaves) are never refused.
* Stream events leave through an outbox. A turn's broadcasts that carry a ``seq`` are
  written with its log rows, in the same transaction, and published after the commit; an
  entity activated with events still in its outbox (its last host died before publishing
  them, or Redis was away) publishes those first, in ``seq`` order, before any newer one.
* Checkpoints are written behind (every N changes or T seconds, and on passivation); a
  failed write is retried and counted, and an entity is never unloaded before its checkpoint
  is saved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from actors.context import Broadcast, Call, Context, EntityKey
from actors.entity import Deactivation, Entity
from actors.lifecycle import Checkpointing, Resident
from actors.messages import Message
from rthub.config import Settings
from rthub.errors import BadRequest, HubError, NotFound, Overloaded, Unavailable

log = logging.getLogger(__name__)

Envelope = tuple[str, str, str, str, Any, bool]
"""(tenant, kind, entity_id, message_type, payload, wants_reply)."""
Outcome = tuple[bool, dict[str, Any]]
"""(ok, content): an ``ack`` content, or an ``error`` content {code, message}."""


class Store(Protocol):
    """What the table needs from storage (``storage.journal.Journal`` in production)."""

    async def load(self, keys: Sequence[EntityKey]) -> dict[EntityKey, Any]: ...
    def append(self, rows: list[tuple], projections: list[tuple[str, dict[str, Any]]],
               unpublished: list[tuple]) -> asyncio.Future[None]: ...
    async def save_checkpoints(self, rows: list[tuple]) -> None: ...
    def backlog(self) -> int: ...


Service = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""A host service an entity may ``ctx.call``: (tenant, request) -> result."""


class Publisher(Protocol):
    """Where broadcasts go (``fanout.publisher.StreamPublisher`` in production). ``publish``
    only enqueues: it must keep the order of calls, and never block a turn. ``source`` is
    the entity (kind, id) whose outbox holds the events, ``ts_ms`` their time."""

    def publish(self, tenant: str, broadcasts: list[Broadcast],
                source: tuple[str, str] | None = None, ts_ms: int | None = None) -> None: ...
    def pending(self) -> int: ...


@dataclass(slots=True)
class Stats:
    """Counters a host reports (``Host.stats``) and exports as metrics."""

    messages: int = 0
    turns: int = 0
    activations: int = 0
    passivations: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0
    persist_failures: int = 0
    shed_mailbox: int = 0  # client messages refused at the host, by bound
    shed_journal: int = 0
    republished: int = 0  # stream events found unpublished in an outbox at activation


class EntityTable(Checkpointing):
    """The entities one host runs (checkpoints and passivation: ``actors.lifecycle``)."""

    def __init__(self, settings: Settings, kinds: dict[str, type[Entity]], store: Store,
                 publisher: Publisher | None = None, clock: Callable[[], float] = time.time,
                 services: dict[str, Service] | None = None) -> None:
        self.services = services or {}
        self.settings = settings
        self.kinds = kinds
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.stats = Stats()
        self.residents: dict[EntityKey, Resident] = {}  # least recently active first
        self._dirty: dict[EntityKey, Resident] = {}  # first dirtied first
        self._unsaved: dict[EntityKey, tuple[int, bytes]] = {}  # snapshots awaiting write
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task] = set()

    # -- intake ----------------------------------------------------------------------------
    def deliver(self, envelopes: Sequence[Envelope], sheddable: Sequence[int] = ()
                ) -> list[asyncio.Future | None]:
        """Enqueue in order; return a reply future per envelope that wants one.

        ``sheddable``: positions of client messages that may be refused at a bound."""
        futures: list[asyncio.Future | None] = []
        fresh: list[Resident] = []
        shed = set(sheddable) if sheddable else None
        journal_full = bool(shed) and self.store.backlog() >= self.settings.journal_queue_limit
        for position, (tenant, kind, entity_id, message_type, payload, wants_reply) in (
                enumerate(envelopes)):
            future = self._loop.create_future() if wants_reply else None
            futures.append(future)
            if shed and position in shed and (refusal := self._refusal(
                    (tenant, kind, entity_id), journal_full)) is not None:
                _settle(future, False, {**refusal.to_content(), "where": refusal.where})
                continue
            cls = self.kinds.get(kind)
            if cls is None or not cls.accepts(message_type):
                err = (NotFound(f"no entity kind {kind!r}") if cls is None
                       else BadRequest(f"{kind} does not accept {message_type!r}"))
                _settle(future, False, err.to_content())
                continue
            key = (tenant, kind, entity_id)
            resident = self.residents.get(key)
            if resident is None:
                resident = self.residents[key] = Resident(key)
                fresh.append(resident)
            if resident.mailbox is None:
                resident.mailbox = []
            resident.mailbox.append((message_type, payload, future))
            if not resident.busy:
                resident.busy = True
                self._spawn(self._drain(resident))
        if fresh:
            self._spawn(self._activate(fresh))
        self.stats.messages += len(envelopes)
        return futures

    def _refusal(self, key: EntityKey, journal_full: bool) -> Overloaded | None:
        """Why a client message for ``key`` must be refused now, if it must."""
        if journal_full:
            self.stats.shed_journal += 1
            return Overloaded("the hub is overloaded (storage is behind); retry shortly",
                              retry_after_ms=100, where="journal")
        resident = self.residents.get(key)
        if resident is not None and resident.mailbox is not None and (
                len(resident.mailbox) >= self.settings.mailbox_limit):
            self.stats.shed_mailbox += 1
            return Overloaded(f"{key[1]} {key[2]} is overloaded; retry shortly",
                              retry_after_ms=100, where="mailbox")
        return None

    # -- activation ------------------------------------------------------------------------
    async def _activate(self, fresh: list[Resident]) -> None:
        try:
            loaded = await self.store.load([r.key for r in fresh])
        except Exception as exc:
            log.error("activation of %d entities failed: %s", len(fresh), exc)
            for resident in fresh:
                self._evict(resident, Unavailable("storage unavailable; retry"))
            return
        for resident in fresh:
            cls = self.kinds[resident.key[1]]
            found = loaded[resident.key]
            try:
                entity = cls.restore(resident.key, found.state)
                for _version, event_type, payload in found.events:
                    entity.apply(cls.decode_event(event_type, msgpack.unpackb(payload)))
            except Exception:
                log.exception("cannot restore %s", resident.key)
                self._evict(resident, HubError(f"cannot restore {resident.key[1]}"))
                continue
            resident.entity = entity
            resident.saved_version = found.version
            resident.version = found.events[-1][0] if found.events else found.version
            self.stats.activations += 1
            self._republish(resident.key, found.unpublished)
            ctx = Context(resident.key, self._now_ms(), self.settings)
            entity.on_activate(ctx)
            self._start_timers(resident.key, ctx)
            if resident.version - resident.saved_version >= self.settings.checkpoint_every:
                self._snapshot(resident)
            self._spawn(self._drain(resident))

    def _republish(self, key: EntityKey, unpublished: Sequence[tuple]) -> None:
        """Queue what an earlier activation committed and never published, ahead of
        anything this one makes (rows come in topic and ``seq`` order)."""
        if not unpublished or self.publisher is None:
            return
        for _t, _k, _i, topic, seq, event_type, content, removes, ts_ms in unpublished:
            event = Broadcast(topic, event_type, msgpack.unpackb(content), seq, removes)
            self.publisher.publish(key[0], [event], (key[1], key[2]), ts_ms)
        self.stats.republished += len(unpublished)
        log.info("%s %s: %d committed stream events republished", key[1], key[2],
                 len(unpublished))

    def wake(self, keys: Sequence[EntityKey]) -> int:
        """Activate entities that are not resident (the outbox sweep: their events are
        published on activation); they passivate when idle like any other."""
        fresh = []
        for key in keys:
            if key not in self.residents and key[1] in self.kinds:
                resident = self.residents[key] = Resident(key)
                resident.busy = True  # until activated: a message meanwhile only queues
                fresh.append(resident)
        if fresh:
            self._spawn(self._activate(fresh))
        return len(fresh)

    def _evict(self, resident: Resident, error: HubError) -> None:
        """Drop a resident that cannot run; its queued asks get ``error``."""
        self.residents.pop(resident.key, None)
        self._dirty.pop(resident.key, None)
        for _, _, future in resident.mailbox or ():
            _settle(future, False, error.to_content())
        resident.mailbox = None

    # -- turns -----------------------------------------------------------------------------
    async def _drain(self, resident: Resident) -> None:
        batch_size = self.settings.message_batch_size
        try:
            while resident.mailbox and resident.entity is not None:
                batch = resident.mailbox[:batch_size]
                del resident.mailbox[:batch_size]
                await self._turn(resident, batch)
        finally:
            if self.residents.get(resident.key) is resident:
                resident.mailbox = resident.mailbox or None
                resident.busy = False
                resident.last_active = self.clock()
                self.residents[resident.key] = self.residents.pop(resident.key)  # now most recent

    async def _turn(self, resident: Resident, batch: list[tuple[str, Any, Any]]) -> None:
        entity, key = resident.entity, resident.key
        assert entity is not None
        outcomes: list[tuple[asyncio.Future | None, bool, dict[str, Any]]] = []
        rows: list[tuple] = []
        projections: list[tuple[str, dict[str, Any]]] = []
        unpublished: list[tuple] = []
        ctxs: list[Context] = []
        now_ms = self._now_ms()
        for position, (message_type, payload, future) in enumerate(batch):
            ctx = Context(key, now_ms, self.settings)
            try:
                entity.handle(message_type, payload, ctx)
            except HubError as err:
                outcomes.append((future, False, err.to_content()))
                continue
            except Exception:
                log.exception("%s %s failed on %r", key[1], key[2], message_type)
                outcomes.append((future, False, HubError("internal error").to_content()))
                continue
            try:
                for event in ctx.events:
                    entity.apply(event)
                    if not event.durable:
                        continue
                    resident.version += 1
                    rows.append((*key, resident.version, type(event).__name__,
                                 msgpack.packb(event.logged(), use_bin_type=True)))
                    projections.extend(event.projections(key))
            except Exception:
                log.exception("%s %s: applying an event failed; reloading", key[1], key[2])
                resident.mailbox = batch[position + 1:] + (resident.mailbox or [])
                self._fail_turn(resident, [*outcomes, (future, True, {})],
                                HubError("internal error"))
                return
            outcomes.append((future, True, ctx.reply_content or {}))
            ctxs.append(ctx)
            if self.publisher is not None:  # no Redis (some tests): nothing to publish later
                unpublished.extend(
                    (*key, b.topic, b.seq, b.type, msgpack.packb(b.content, use_bin_type=True),
                     b.removes, now_ms) for b in ctx.broadcasts if b.seq is not None)
        self.stats.turns += 1
        if rows or unpublished:
            try:
                await self.store.append(rows, projections, unpublished)
            except Exception as exc:
                self.stats.persist_failures += 1
                log.error("persisting %d events of %s failed: %s", len(rows), key, exc)
                error = Unavailable("could not persist; retry with the same idempotency key")
                self._fail_turn(resident, outcomes, error)
                return
            self._mark_dirty(resident)
        for future, ok, content in outcomes:
            _settle(future, ok, content)
        broadcasts = [b for ctx in ctxs for b in ctx.broadcasts]
        if broadcasts:
            if self.publisher is None:
                log.warning("%s %s broadcast with no publisher configured", key[1], key[2])
            else:
                self.publisher.publish(key[0], broadcasts, (key[1], key[2]), now_ms)
        for ctx in ctxs:
            self._start_timers(key, ctx)
            for call in ctx.calls:
                self._spawn(self._call(key, call))
            if ctx.stopping:
                self._spawn(self.passivate(resident, Deactivation.STOPPED))

    def _fail_turn(self, resident: Resident, outcomes: list, error: HubError) -> None:
        """The in-memory state is ahead of (or off) what is durable: answer, then reload."""
        for future, ok, content in outcomes:
            _settle(future, False, error.to_content() if ok else content)
        leftover = resident.mailbox or []
        resident.mailbox = None
        self._evict(resident, error)
        resident.entity = None
        # Messages not yet handled run, in order, on a fresh activation of the durable state.
        inners = self.deliver([(*resident.key, t, p, f is not None) for t, p, f in leftover])
        for (_, _, outer), inner in zip(leftover, inners, strict=True):
            if inner is not None:
                inner.add_done_callback(lambda done, outer=outer: _settle(outer, *done.result()))

    # -- timers ----------------------------------------------------------------------------
    def _start_timers(self, key: EntityKey, ctx: Context) -> None:
        for timer in ctx.timers:
            self._loop.call_later(timer.delay_s, self._fire, key, timer.message)

    async def _call(self, key: EntityKey, call: Call) -> None:
        """Run a service call off the turn; its answer (or error) returns as a message."""
        service = self.services.get(call.service)
        try:
            if service is None:
                raise LookupError(f"no service {call.service!r} on this host")
            result = await service(key[0], call.request)
            answer = {"result": result, "error": ""}
        except Exception as exc:
            log.warning("%s %s: service %s failed: %s", key[1], key[2], call.service, exc)
            answer = {"result": {}, "error": str(exc) or type(exc).__name__}
        message = call.reply_to(**call.fields, **answer)
        self.deliver([(*key, message.type, message, False)])

    def _fire(self, key: EntityKey, message: Message) -> None:
        self.deliver([(*key, message.type, message, False)])

    # -- helpers ---------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _settle(future: asyncio.Future | None, ok: bool, content: dict[str, Any]) -> None:
    if future is not None and not future.done():
        future.set_result((ok, content))
