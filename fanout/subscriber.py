"""Gateway side of fan-out: one Redis pub/sub connection per replica, shared by its sockets.

A channel is subscribed when the first local listener arrives and unsubscribed when the last
leaves (reference counted), so a room of N members costs one delivery per replica, not N.
``add`` returns only once Redis has confirmed the subscription: a caller that then reads the
stream's history cannot miss an event between the two. Each event is decoded once and passed
through ``prepare`` once (the gateway encodes its frame there), then to every listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis

from fanout.streams import channel

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


def _as_is(event: dict[str, Any]) -> Any:
    return event


class TopicHub:
    """Local fan-out of topic events to listeners (sockets) of this process."""

    def __init__(self, redis_url: str,
                 prepare: Callable[[dict[str, Any]], Any] = _as_is) -> None:
        self._prepare = prepare
        self._client = aioredis.from_url(redis_url)
        self._pubsub = self._client.pubsub()
        self._listeners: dict[bytes, set[Listener]] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def add(self, tenant: str, topic: str, listener: Listener) -> None:
        name = channel(tenant, topic).encode()
        async with self._lock:
            listeners = self._listeners.setdefault(name, set())
            listeners.add(listener)
            confirmed = self._confirmed.get(name)
            if confirmed is None:
                confirmed = self._confirmed[name] = asyncio.Event()
                await self._pubsub.subscribe(name)
                if self._reader is None:
                    self._reader = asyncio.get_running_loop().create_task(self._read(),
                                                                          name="hub")
        await confirmed.wait()  # also for a second listener that arrives before Redis answers

    async def remove(self, tenant: str, topic: str, listener: Listener) -> None:
        name = channel(tenant, topic).encode()
        async with self._lock:
            listeners = self._listeners.get(name)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[name]
                self._confirmed.pop(name, None)
                await self._pubsub.unsubscribe(name)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)  # block: no timer per read
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: redis-py reconnects and resubscribes
                log.warning("pub/sub read failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            kind, name = message["type"], message["channel"]
            if kind == "subscribe":
                if (event := self._confirmed.get(name)) is not None:
                    event.set()
            elif kind == "message":
                listeners = self._listeners.get(name)
                if not listeners:
                    continue
                try:
                    prepared = self._prepare(msgpack.unpackb(message["data"], raw=False))
                except Exception:  # a bad event must not stop the reader
                    log.exception("dropping an event on %s that could not be prepared", name)
                    continue
                for listener in tuple(listeners):
                    try:
                        listener(prepared)
                    except Exception:
                        log.exception("a listener of %s failed", name)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
        await self._client.aclose()
