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

from actors.entity import EntityKey
from actors.host import Host
from actors.messages import Message
from actors.placement import host_name
from rthub.config import Settings
from rthub.errors import HubError, Unavailable, from_content

log = logging.getLogger(__name__)

_RemoteHost = ray.remote(Host)

# Called (with no argument) each time the current task queues a message for an entity: from
# then on its order against this process's later messages to that entity is fixed, so a caller
# that keeps requests in order (a socket's pipelined frames) may start the next one.
on_queued: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "rthub_on_queued", default=None)


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
    __slots__ = ("handle", "in_flight", "pending", "scheduled", "seq", "unanswered")

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.pending: list[tuple[tuple, asyncio.Future | None]] = []
        self.in_flight = 0
        self.scheduled = False
        self.seq = 0
        self.unanswered: set[int] = set()  # seqs of calls in flight


class ActorSystem:
    """One per process (gateway replica, benchmark driver, test). Needs ``ray.init`` first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.caller_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lanes: dict[str, _Lane] = {}
        self._calls: set[asyncio.Task] = set()

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
        future = loop.create_future() if wants_reply else None
        lane.pending.append(((*key, message_type, payload, wants_reply), future))
        if not lane.scheduled and lane.in_flight < self.settings.host_calls_in_flight:
            lane.scheduled = True
            loop.call_soon(self._flush, name, lane)  # same-tick messages share the call
        return future

    def _flush(self, name: str, lane: _Lane) -> None:
        lane.scheduled = False
        size = self.settings.message_batch_size
        loop = asyncio.get_running_loop()
        while lane.pending and lane.in_flight < self.settings.host_calls_in_flight:
            batch = lane.pending[:size]
            del lane.pending[:size]
            lane.in_flight += 1
            lane.seq += 1
            lane.unanswered.add(lane.seq)
            call = loop.create_task(self._send(name, lane, lane.seq, batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _send(self, name: str, lane: _Lane, seq: int,
                    batch: list[tuple[tuple, asyncio.Future | None]]) -> None:
        try:
            floor = min(lane.unanswered)  # every earlier call has been answered
            results = await lane.handle.deliver.remote(self.caller_id, seq, floor,
                                                       [e for e, _ in batch])
        except (RayError, OSError) as exc:
            log.warning("call to %s failed (%s): %d messages have an unknown outcome",
                        name, type(exc).__name__, len(batch))
            error = Unavailable(f"host {name} failed mid-call; the outcome is unknown, "
                                "retry with the same idempotency key")
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_exception(error)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future is None or future.done():
                    continue
                ok, content = result
                if ok:
                    future.set_result(content)
                else:
                    future.set_exception(from_content(content))
        finally:
            lane.unanswered.discard(seq)
            lane.in_flight -= 1
            if lane.pending and not lane.scheduled:
                lane.scheduled = True
                asyncio.get_running_loop().call_soon(self._flush, name, lane)


def _unpack(message: Message | str, content: dict[str, Any] | None) -> tuple[str, Any]:
    if isinstance(message, Message):
        return message.type, message
    if not isinstance(message, str):
        raise HubError("ask/tell take a Message or a message type string")
    return message, content or {}
