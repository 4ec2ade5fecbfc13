"""The notifier: one detached Ray actor per hub (named ``rthub-notifier`` in the hub's
namespace) that runs the dispatcher, and the door every process that reaches the cluster
sends notifications through (``rthub.realtime``). Ray restarts it after a crash; whatever it
had accepted is in the durable queue, and the gateways start its loop again within a
heartbeat interval when notifications wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import ray

from actors.client import ActorSystem
from actors.kinds.inbox import Profile
from notify import model, providers, templates
from notify.courier import Courier
from notify.dispatcher import Dispatcher
from rthub.config import Settings
from storage import notifications as store
from storage.postgres import open_pool

log = logging.getLogger(__name__)

NAME = "rthub-notifier"
START_EVERY_S = 10.0  # a process asks the notifier to run at most this often


class Notifier:
    """Ray actor class; reach it through ``notifier(settings)``."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._settings = settings
        self._pool: Any = None
        self._dispatcher: Dispatcher | None = None
        self._task: asyncio.Task | None = None
        self._system: ActorSystem | None = None
        self._courier: Courier | None = None

    async def _ready(self) -> Any:
        if self._pool is None:
            self._pool = await open_pool(self._settings.postgres_url,
                                         self._settings.pg_pool_size)
        return self._pool

    async def start(self) -> bool:
        """Run the dispatcher (idempotent); True once it runs."""
        if self._task is None or self._task.done():
            pool = await self._ready()
            self._system = system = self._system or ActorSystem(self._settings)
            s = self._settings
            self._courier = self._courier or Courier(
                asker(system), pool, providers.configured(s),
                templates.load(s.notify_catalog, s.notify_locale),
                digest_limit=s.message_batch_size)
            self._dispatcher = Dispatcher(pool, self._courier)
            self._task = asyncio.get_running_loop().create_task(self._dispatcher.run())
            log.info("notification dispatcher running")
        return True

    async def send(self, tenant: str, payload: dict[str, Any],
                   idempotency_key: str | None = None) -> dict[str, Any]:
        """Accept one notification (``model.Notification.from_request`` checks it)."""
        await self.start()
        assert self._system is not None
        payload = await with_user_locale(self._system.ref, tenant, payload)
        s = self._settings
        note = model.Notification.from_request(
            payload, templates.load(s.notify_catalog, s.notify_locale), model.available(s))
        found, _ = await store.enqueue(await self._ready(), tenant, note.row(idempotency_key),
                                       s.notification_queue_size)
        return found

    async def status(self, tenant: str, ident: str) -> dict[str, Any] | None:
        return await store.status(await self._ready(), tenant, ident)

    async def settings(self) -> Settings:
        """The hub's resolved settings (a process joining the cluster needs its URLs)."""
        return self._settings

    async def stats(self) -> dict[str, Any]:
        """The dispatcher's counts, and each channel's outcomes (``{"push": {"sent": n}}``)."""
        d, c = self._dispatcher, self._courier
        if d is None or c is None:
            return {}
        channels: dict[str, dict[str, int]] = {}
        for (channel, state), count in c.outcomes.items():
            channels.setdefault(channel, {})[state] = count
        return {"sent": d.sent, "failed": d.failed, "retried": d.retried, "pruned": c.pruned,
                "channels": channels}


async def with_user_locale(ref: Callable[[str, str, str], Any], tenant: str,
                           payload: Any) -> Any:
    """A templated notification without a ``locale`` is rendered in the user's (their
    inbox keeps it); anything else is left as it is. ``ref`` names an entity (the gateway's
    or an ``ActorSystem``'s)."""
    if (not isinstance(payload, dict) or "template" not in payload or "locale" in payload
            or not isinstance(payload.get("user_id"), str)):
        return payload
    profile = await ref("inbox", payload["user_id"], tenant).ask(Profile())
    return {**payload, "locale": profile["locale"]} if profile["locale"] else payload


def asker(system: ActorSystem) -> Any:
    """Ask a user's inbox entity (the in-app channel and the user's preferences)."""
    async def ask(tenant: str, user: str, message: Any) -> Any:
        return await system.ref("inbox", user, tenant).ask(message)

    return ask


_RemoteNotifier = ray.remote(Notifier)
_started: dict[str, float] = {}


def notifier(settings: Settings) -> Any:
    """The hub's notifier, created if no process has yet."""
    return _RemoteNotifier.options(
        name=NAME, namespace=settings.namespace, get_if_exists=True, lifetime="detached",
        max_restarts=-1, max_task_retries=0, num_cpus=0, max_concurrency=1000,
    ).remote(settings)


def ensure_running(settings: Settings) -> None:
    """Ask the notifier to run its dispatcher (at most every ``START_EVERY_S`` from this
    process; it may have been restarted since)."""
    now = time.monotonic()
    if now - _started.get(settings.namespace, -START_EVERY_S) >= START_EVERY_S:
        _started[settings.namespace] = now
        notifier(settings).start.remote()


def stop(settings: Settings) -> None:
    """Kill the hub's notifier (a hub going away for good: tests, ``rthub up`` exiting)."""
    with contextlib.suppress(ValueError):  # never started
        ray.kill(ray.get_actor(NAME, namespace=settings.namespace), no_restart=True)
