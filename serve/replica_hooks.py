"""Serve internals the gateway needs and Serve has no API for (checked against Ray 2.60).

Kept in this one module; each hook checks that the internals look as expected and degrades
(with a warning) when they do not.

* Drain start. On a graceful stop Serve first waits for in-flight requests, and an open socket
  is one, up to ``graceful_shutdown_timeout_s``; only then does it call ``__del__``. Closing
  sockets from ``__del__`` is therefore too late (they are killed without a close frame).
  The replica object sets ``_shutting_down`` when the drain begins: watching it lets the
  gateway close every socket with 1012 at once, which also lets the drain finish early.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

_REPLICA_MODULE = "ray.serve._private.replica"


def find_replica() -> object | None:
    """The Serve ``Replica`` object of this process, or None outside Serve.

    Ray keeps the actor instance of a worker in ``global_worker.actors``; a Serve replica
    actor holds its ``Replica`` in ``_replica_impl``. (A gc scan cannot find it: Ray freezes
    the collector's view of long-lived objects in workers.)
    """
    import ray

    worker = getattr(ray._private.worker, "global_worker", None)
    for actor in getattr(worker, "actors", {}).values():
        replica = getattr(actor, "_replica_impl", None)
        kind = type(replica)
        if kind.__name__ == "Replica" and kind.__module__ == _REPLICA_MODULE \
                and hasattr(replica, "_shutting_down"):
            return replica
    return None


async def when_draining(callback: Callable[[], Awaitable[None]], period_s: float = 0.2
                        ) -> None:
    """Run ``callback`` as soon as Serve starts draining this replica."""
    replica = find_replica()
    if replica is None:
        log.warning("Serve replica internals not found: sockets get 1012 only from __del__")
        return
    while True:
        await asyncio.sleep(period_s)
        if replica._shutting_down:  # type: ignore[attr-defined]
            break
    log.info("replica draining: closing sockets with 1012")
    await callback()
