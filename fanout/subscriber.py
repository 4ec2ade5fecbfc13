"""Gateway side of fan-out: one Redis pub/sub connection per replica, shared by its sockets.

A channel is subscribed when the first local listener arrives and unsubscribed when the last
leaves (reference counted), so a room of N members costs one delivery per replica, not N.
``add`` returns only once Redis has confirmed the subscription: a caller that then reads the
stream's history cannot miss an event between the two. Each event is decoded once and passed
through ``prepare`` once (the gateway encodes its frame there), then to every listener.

On a Redis Cluster (``fanout.connect``) channels are sharded: one connection per node that
owns a followed topic (``fanout.sharded``), moved when a slot moves or a node fails over. A
channel that was live and then lost (its node dropped it or its connection; on a single
Redis, the pub/sub connection, which redis-py reconnects and resubscribes) is caught up from
the topic's stream once it is confirmed again: its live events are held meanwhile, and what was
published in between is read back and delivered first, in ``seq`` order, so a resharding or a
failover costs a delay, not a gap (ephemeral events published in between are lost). The client
is made, and the server asked whether it is a cluster, on the first ``add``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgpack
from redis.asyncio.client import PubSub
from redis.exceptions import RedisClusterException, RedisError

from fanout.connect import Client, aclient, is_cluster
from fanout.sharded import ShardedSubscriptions
from fanout.streams import channel, stream_of

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]
CATCH_UP_TRIES = (0.1, 0.3, 1.0, 3.0)  # reading a stream back while the cluster settles


def _as_is(event: dict[str, Any]) -> Any:
    return event


class TopicHub:
    """Local fan-out of topic events to listeners (sockets) of this process."""

    def __init__(self, redis_url: str,
                 prepare: Callable[[dict[str, Any]], Any] = _as_is) -> None:
        self._url = redis_url
        self._prepare = prepare
        self._client: Client | None = None
        self._pubsub: PubSub | None = None  # a single Redis: SUBSCRIBE on one connection
        self._shards: ShardedSubscriptions | None = None  # a cluster: SSUBSCRIBE per node
        self._listeners: dict[bytes, set[Listener]] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # cluster only: where a catch-up starts, and channels lost until confirmed again
        self._last: dict[bytes, int] = {}
        self._held: dict[bytes, list[dict[str, Any]]] = {}
        self._unconfirmed: set[bytes] = set()
        self._catch_ups: dict[bytes, asyncio.Task] = {}
        self._again: set[bytes] = set()
        self.read_back = 0  # events delivered from a stream after their channel was lost

    @property
    def shards(self) -> ShardedSubscriptions | None:
        """The cluster's per-node subscriptions (None on a single Redis or before ``add``)."""
        return self._shards

    async def _connect(self) -> None:
        if self._client is None:
            client = await aclient(self._url)
            if is_cluster(client):
                self._shards = ShardedSubscriptions(client, self._arrived, self._subscribed,
                                                    self._lost)
            else:
                self._pubsub = client.pubsub()
            self._client = client

    async def add(self, tenant: str, topic: str, listener: Listener) -> None:
        name = channel(tenant, topic).encode()
        async with self._lock:
            await self._connect()
            listeners = self._listeners.setdefault(name, set())
            listeners.add(listener)
            confirmed = self._confirmed.get(name)
            if confirmed is None:
                confirmed = self._confirmed[name] = asyncio.Event()
                if self._shards is not None:
                    await self._shards.subscribe(name)
                else:
                    assert self._pubsub is not None
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
                for kept in (self._last, self._held):
                    kept.pop(name, None)
                self._unconfirmed.discard(name)
                if self._shards is not None:
                    await self._shards.unsubscribe(name)
                else:
                    assert self._pubsub is not None
                    await self._pubsub.unsubscribe(name)

    async def _read(self) -> None:
        assert self._pubsub is not None
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
                self._subscribed(name)
            elif kind == "message":
                self._arrived(name, message["data"])

    def _subscribed(self, name: bytes) -> None:
        event = self._confirmed.get(name)
        if event is not None and event.is_set() and self._shards is None:
            # A single Redis confirms a channel again when redis-py has reconnected and
            # resubscribed (Redis restarted, or the connection dropped): what was published
            # in between is read back from the stream, as on a cluster.
            self._held.setdefault(name, [])
            self._unconfirmed.add(name)
        if event is not None:
            event.set()
        if name in self._unconfirmed:  # confirmed again after a loss: read back the gap
            self._unconfirmed.discard(name)
            if name in self._catch_ups:
                self._again.add(name)
            else:
                self._catch_ups[name] = asyncio.get_running_loop().create_task(
                    self._catch_up(name), name="hub catch-up")

    def _arrived(self, name: bytes, data: bytes) -> None:
        listeners = self._listeners.get(name)
        if not listeners:
            return
        try:
            event = msgpack.unpackb(data, raw=False)
        except Exception:  # a bad event must not stop the reader
            log.exception("dropping an event on %s that could not be decoded", name)
            return
        held = self._held.get(name)
        if held is not None:
            held.append(event)
            return
        self._fan_out(name, event, listeners)

    def _fan_out(self, name: bytes, event: dict[str, Any], listeners: set[Listener]) -> None:
        if (seq := event.get("seq")) is not None:
            self._last[name] = seq
        try:
            prepared = self._prepare(event)
        except Exception:  # a bad event must not stop the reader
            log.exception("dropping an event on %s that could not be prepared", name)
            return
        for listener in tuple(listeners):
            try:
                listener(prepared)
            except Exception:
                log.exception("a listener of %s failed", name)

    # -- cluster: a channel lost and found again ------------------------------------------
    def _lost(self, name: bytes) -> None:
        confirmed = self._confirmed.get(name)
        if confirmed is None or not confirmed.is_set():
            return  # never live: nobody can have missed anything yet
        self._held.setdefault(name, [])
        self._unconfirmed.add(name)

    def _in_order(self, name: bytes, event: dict[str, Any]) -> bool:
        """Deliver a caught-up or held event unless its ``seq`` already went out."""
        listeners = self._listeners.get(name)
        seq = event.get("seq")
        if listeners and (seq is None or seq > self._last.get(name, 0)):
            self._fan_out(name, event, listeners)
            return True
        return False

    async def _catch_up(self, name: bytes) -> None:
        try:
            while True:
                self._again.discard(name)
                for event in await self._missed(name):
                    self.read_back += self._in_order(name, event)
                if name not in self._again:
                    break
        finally:
            self._catch_ups.pop(name, None)
        if name in self._unconfirmed:
            return  # lost again meanwhile: the next confirmation finishes the job
        for event in self._held.pop(name, []):
            self._in_order(name, event)

    async def _missed(self, name: bytes) -> list[dict[str, Any]]:
        """The kept events after the last one delivered (all kept when none was: the
        sockets drop what they already have by ``seq``)."""
        last = self._last.get(name)
        start = f"{last + 1}-0" if last is not None else "-"
        for delay in (*CATCH_UP_TRIES, None):
            try:
                assert self._client is not None
                entries = await self._client.xrange(stream_of(name), min=start)
                return [msgpack.unpackb(fields[b"e"], raw=False) for _, fields in entries]
            except (RedisError, RedisClusterException, OSError) as exc:
                if delay is None:
                    log.warning("could not read back %s after it moved: %s", name, exc)
                    return []
                await asyncio.sleep(delay)
        return []

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._catch_ups.values()):
            task.cancel()
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._shards is not None:
            await self._shards.close()
        if self._client is not None:
            await self._client.aclose()
