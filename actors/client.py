"""How any process talks to entities: ``system.ref(kind, id).ask(...)`` / ``.tell(...)``.

Messages for the same host are batched into one Ray call (up to MESSAGE_BATCH_SIZE), because
a Ray call costs far more than handling a message (~1.4 ms of CPU between caller and host on
the 2-core machine at 200 calls/s). A lane per host sends at once when it is idle; under
load, what arrives while calls are in flight rides in the next call. Up to
RTHUB_HOST_CALLS_IN_FLIGHT calls per host overlap (2: fewer, bigger calls; a second one so a
slow call does not hold up every other entity of the host), and Ray may start an async
actor's calls out of order, so each call carries its sequence number and the lowest one still
unanswered: the host enqueues a call only after every earlier unanswered one, which keeps
per-entity order.

Admission control: a message sent on behalf of a client request (the gateway sets
``admission`` to the requesting user) is refused at once, ``Overloaded`` (``unavailable`` with
``retry_after_ms``), instead of queueing for seconds, when its host is behind from this
process's point of view: RTHUB_HOST_QUEUE_LIMIT client messages wait on it, or the oldest has
waited over twice RTHUB_QUEUE_TARGET_MS (a host that stopped answering). Past half the limit
or past the target, only a room or user with nothing waiting gets through: a flood cannot
take every slot. The runtime's own messages (a socket's close, timers) are never refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError

from actors.context import EntityKey
from actors.host import Host
from actors.messages import Message
from actors.placement import host_name
from rthub.config import Settings
from rthub.errors import HubError, Overloaded, Unavailable, from_content

log = logging.getLogger(__name__)

_RemoteHost = ray.remote(Host)

# Called (with no argument) each time the current task queues a message for an entity: from
# then on its order against this process's later messages to that entity is fixed, so a caller
# that keeps requests in order (a socket's pipelined frames) may start the next one.
on_queued: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "rthub_on_queued", default=None)

# Set (to the requesting user) while a client request runs: its entity messages pass
# admission control and count towards that user's and entity's waiting messages.
admission: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rthub_admission", default=None)

MIN_RETRY_MS, MAX_RETRY_MS = 10, 5000  # bounds of the retry_after_ms a refusal gives

Pending = tuple[tuple, "asyncio.Future | None", "tuple[EntityKey, str] | None", float]
"""(envelope, reply future, (entity, user) for an admitted client message, when queued)."""


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A handle to one entity; cheap to make, holds no connection."""

    system: ActorSystem
    key: EntityKey

    async def ask(self, message: Message | str, content: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        """Send and wait for the ``ack`` content; raise the ``HubError`` the entity reported.

        Bound the wait with ``asyncio.timeout()``; the message may still run after it expires.
        """
        message_type, payload = _unpack(message, content)
        future = self.system._enqueue(self.key, message_type, payload, wants_reply=True)
        assert future is not None
        if (queued := on_queued.get()) is not None:
            queued()
        return await future

    def tell(self, message: Message | str, content: dict[str, Any] | None = None) -> None:
        """Send without waiting; delivery is in order with this process's asks."""
        message_type, payload = _unpack(message, content)
        self.system._enqueue(self.key, message_type, payload, wants_reply=False)
        if (queued := on_queued.get()) is not None:
            queued()


class _Lane:
    __slots__ = ("admitted", "handle", "in_flight", "pending", "scheduled", "seq",
                 "unanswered", "waiting")

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.pending: list[Pending] = []
        self.in_flight = 0
        self.scheduled = False
        self.seq = 0
        self.unanswered: dict[int, float] = {}  # seq of a call in flight -> its oldest message
        self.waiting = 0  # messages pending or in flight
        self.admitted = 0  # of which client requests' (what RTHUB_HOST_QUEUE_LIMIT bounds)

    def delay(self, now: float) -> float:
        """Seconds the oldest message waiting on this host has waited."""
        oldest = self.pending[0][3] if self.pending else now
        for since in self.unanswered.values():
            oldest = min(oldest, since)
        return now - oldest


class ActorSystem:
    """One per process (gateway replica, benchmark driver, test). Needs ``ray.init`` first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.caller_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lanes: dict[str, _Lane] = {}
        self._calls: set[asyncio.Task] = set()
        # admitted client messages waiting, per entity and per user (admission fairness)
        self._entity_waiting: dict[EntityKey, int] = {}
        self._user_waiting: dict[str, int] = {}
        self.shed: dict[str, int] = {}  # client messages refused, by the bound that refused

    def queue_depth(self) -> int:
        """Messages this process has waiting on hosts (pending or in a call)."""
        return sum(lane.waiting for lane in self._lanes.values())

    def queue_delay(self) -> float:
        """Seconds the oldest message waiting on any host has waited."""
        now = asyncio.get_running_loop().time()
        return max((lane.delay(now) for lane in self._lanes.values()), default=0.0)

    def queues(self) -> dict[str, tuple[int, int, float]]:
        """Per host: (messages waiting, client requests among them, seconds the oldest has
        waited): what admission control compares with RTHUB_HOST_QUEUE_LIMIT and
        RTHUB_QUEUE_TARGET_MS, host by host."""
        now = asyncio.get_running_loop().time()
        return {name: (lane.waiting, lane.admitted, lane.delay(now))
                for name, lane in self._lanes.items()}

    def ref(self, kind: str, entity_id: str, tenant: str = "default") -> EntityRef:
        return EntityRef(self, (tenant, kind, entity_id))

    def host_for(self, key: EntityKey) -> str:
        """Name of the host actor that runs ``key``."""
        return host_name(key, self.settings.hosts, self.settings.pinned)

    def host(self, name: str) -> Any:
        """The host actor called ``name``, created if no process has yet."""
        return _RemoteHost.options(
            name=name, namespace=self.settings.namespace, get_if_exists=True,
            lifetime="detached", max_restarts=-1, max_task_retries=0,
            num_cpus=self.settings.host_cpus, max_concurrency=100_000,
        ).remote(self.settings, name)

    def start(self) -> list[Any]:
        """Create (or find) every hashed host now, so the first messages do not pay for it."""
        return [self._lane(f"rthub-host-{i}").handle for i in range(self.settings.hosts)]

    def shutdown_hosts(self) -> None:
        """Kill this namespace's hosts, pinned ones included (tests and ``rthub up`` exit)."""
        for name in list(self._lanes):
            ray.kill(self._lanes.pop(name).handle, no_restart=True)

    # -- batching ---------------------------------------------------------------------------
    def _lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(self.host(name))
        return lane

    def _enqueue(self, key: EntityKey, message_type: str, payload: Any,
                 wants_reply: bool) -> asyncio.Future | None:
        loop = asyncio.get_running_loop()
        name = self.host_for(key)
        lane = self._lane(name)
        now = loop.time()
        tag = None
        if (user := admission.get()) is not None:
            admission.set(None)  # one gate per request: what it sends next is part of it
            self._admit(lane, key, user, now)
            tag = (key, user)
            lane.admitted += 1
            self._entity_waiting[key] = self._entity_waiting.get(key, 0) + 1
            self._user_waiting[user] = self._user_waiting.get(user, 0) + 1
        future = loop.create_future() if wants_reply else None
        lane.pending.append(((*key, message_type, payload, wants_reply), future, tag, now))
        lane.waiting += 1
        if not lane.scheduled and lane.in_flight < self.settings.host_calls_in_flight:
            lane.scheduled = True
            loop.call_soon(self._flush, name, lane)  # same-tick messages share the call
        return future

    def _admit(self, lane: _Lane, key: EntityKey, user: str, now: float) -> None:
        """Raise ``Overloaded`` if a client message for ``key`` must not wait on its host.

        Behind (half the queue limit waiting, or the oldest waiting message older than the
        target): only a room and a user with nothing waiting get in. Past the limit or twice
        the target: nothing does. ``retry_after_ms``: the oldest waiting message's age (how
        far behind the host is), at least a quarter of the target."""
        limit = self.settings.host_queue_limit
        target = self.settings.queue_target_ms / 1000
        delay = lane.delay(now)
        if lane.admitted >= limit:
            reason = "host_queue"
        elif delay > 2 * target:
            reason = "host_delay"
        elif lane.admitted < limit // 2 and delay <= target:
            return
        elif self._entity_waiting.get(key) or self._user_waiting.get(user):
            reason = "fair_share"  # behind: one waiting message per room and per user
        else:
            return
        self.shed[reason] = self.shed.get(reason, 0) + 1
        retry_ms = int(min(max(delay * 1000, target * 1000 / 4, MIN_RETRY_MS), MAX_RETRY_MS))
        raise Overloaded("the hub is overloaded; retry shortly", retry_ms, reason)

    def _flush(self, name: str, lane: _Lane) -> None:
        lane.scheduled = False
        size = self.settings.message_batch_size
        loop = asyncio.get_running_loop()
        while lane.pending and lane.in_flight < self.settings.host_calls_in_flight:
            batch = lane.pending[:size]
            del lane.pending[:size]
            lane.in_flight += 1
            lane.seq += 1
            lane.unanswered[lane.seq] = batch[0][3]  # its oldest message
            call = loop.create_task(self._send(name, lane, lane.seq, batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _send(self, name: str, lane: _Lane, seq: int, batch: list[Pending]) -> None:
        try:
            floor = min(lane.unanswered)  # every earlier call has been answered
            # the host may refuse an admitted client ask (a tell's refusal would go unheard)
            sheddable = [i for i, (_, future, tag, _) in enumerate(batch)
                         if tag is not None and future is not None]
            envelopes = [e for e, _, _, _ in batch]
            results = await (lane.handle.deliver.remote(self.caller_id, seq, floor, envelopes,
                                                        sheddable) if sheddable else
                             lane.handle.deliver.remote(self.caller_id, seq, floor, envelopes))
        except (RayError, OSError) as exc:
            log.warning("call to %s failed (%s): %d messages have an unknown outcome",
                        name, type(exc).__name__, len(batch))
            error = Unavailable(f"host {name} failed mid-call; the outcome is unknown, "
                                "retry with the same idempotency key")
            for _, future, _, _ in batch:
                if future is not None and not future.done():
                    future.set_exception(error)
        else:
            for (_, future, _, _), result in zip(batch, results, strict=True):
                if future is None or future.done():
                    continue
                ok, content = result
                if ok:
                    future.set_result(content)
                else:
                    if (where := content.get("where")) is not None:  # refused at the host
                        self.shed[where] = self.shed.get(where, 0) + 1
                    future.set_exception(from_content(content))
        finally:
            del lane.unanswered[seq]
            lane.in_flight -= 1
            lane.waiting -= len(batch)
            for _, _, tag, _ in batch:
                if tag is not None:
                    lane.admitted -= 1
                    self._release(*tag)
            if lane.pending and not lane.scheduled:
                lane.scheduled = True
                asyncio.get_running_loop().call_soon(self._flush, name, lane)

    def _release(self, key: EntityKey, user: str) -> None:
        for counts, which in ((self._entity_waiting, key), (self._user_waiting, user)):
            left = counts[which] - 1
            if left:
                counts[which] = left
            else:
                del counts[which]


def _unpack(message: Message | str, content: dict[str, Any] | None) -> tuple[str, Any]:
    if isinstance(message, Message):
        return message.type, message
    if not isinstance(message, str):
        raise HubError("ask/tell take a Message or a message type string")
    return message, content or {}
