"""Gateway side of fan-out: one Redis pub/sub connection per replica, shared by its sockets.

A channel is subscribed when the first local listener arrives and unsubscribed when the last
leaves (reference counted), so a room of N members costs one delivery per replica, not N.
``add`` returns only once Redis has confirmed the subscription: a caller that then reads the
stream's history cannot miss an event between the two.
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

Listener = Callable[[dict[str, Any]], None]


class TopicHub:
    """Local fan-out of topic events to listeners (sockets) of this process."""

    def __init__(self, redis_url: str) -> None:
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
            if len(listeners) > 1:
                return
            confirmed = self._confirmed[name] = asyncio.Event()
            await self._pubsub.subscribe(name)
            if self._reader is None:
                self._reader = asyncio.get_running_loop().create_task(self._read(), name="hub")
        await confirmed.wait()

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
                message = await self._pubsub.get_message(timeout=1.0)
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
                event_data = msgpack.unpackb(message["data"], raw=False)
                for listener in tuple(self._listeners.get(name, ())):
                    listener(event_data)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
        await self._client.aclose()
