"""Sharded pub/sub on a Redis Cluster, for the gateway's subscriber (``fanout.subscriber``):
each channel is SSUBSCRIBEd on the node owning its slot, over one connection per node with a
reader task of its own.

redis-py 8.1 has ``ClusterPubSub.ssubscribe``, but its ``get_sharded_message`` polls the
nodes' connections in turn, each with a timeout: there is no blocking read across nodes, so it
costs either a timer per read or up to a timeout of latency per node. And it moves a channel
only when its own client refreshes the slot map, not when a node drops the subscription
(Redis 7 sends ``sunsubscribe`` to a shard channel's subscribers when its slot leaves the
node). So this keeps plain per-node ``PubSub`` objects and one healer:

* a node's reader blocks on its connection; after a lost connection redis-py reconnects and
  subscribes again on the same node (a restarted node);
* the healer reads the slot map again and moves every channel whose owner changed (best-effort
  SUNSUBSCRIBE on the old node, SSUBSCRIBE on the new). A reader wakes it when its node drops
  a channel it did not give up (resharding), refuses an SSUBSCRIBE with MOVED or ASK (a stale
  map, a slot being migrated), or cannot be reached (failover); while the cluster has not
  settled it tries again with back-off.

Whoever uses it hears of each channel through three callbacks: ``arrived(channel, data)``,
``subscribed(channel)`` (confirmed by the node that owns it now) and ``lost(channel)`` (live
events may be missed until the next ``subscribed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, RedisClusterException, RedisError, ResponseError

log = logging.getLogger(__name__)

HEAL_AFTER_S = 0.05  # a burst of reports (one per channel) makes one pass
HEAL_MAX_WAIT_S = 5.0
# what a cluster client passes its nodes' connections and a plain connection cannot use
_CLUSTER_ONLY = ("oss_cluster_maint_notifications_handler",)

Arrived = Callable[[bytes, bytes], None]
Notice = Callable[[bytes], None]


@dataclass(eq=False)
class _Link:
    """One node's pub/sub connection and its reader."""

    node: str
    pool: aioredis.ConnectionPool
    pubsub: PubSub
    reader: asyncio.Task | None = None
    broken: bool = False  # its connection failed and has not delivered since


class ShardedSubscriptions:
    """SSUBSCRIBE each channel on its slot's owner; follow it when the slot moves."""

    def __init__(self, cluster: RedisCluster, arrived: Arrived, subscribed: Notice,
                 lost: Notice) -> None:
        self._cluster = cluster
        self._arrived, self._subscribed, self._lost = arrived, subscribed, lost
        self._wanted: set[bytes] = set()
        self._where: dict[bytes, str] = {}  # channel -> the node its SSUBSCRIBE went to
        self._links: dict[str, _Link] = {}  # node name -> link
        self._lock = asyncio.Lock()  # subscribe, unsubscribe and a healing pass, one at a time
        self._heal = asyncio.Event()
        self._healer: asyncio.Task | None = None
        self.moves = 0  # channels the healer moved to another node (tests, logs)

    async def subscribe(self, name: bytes) -> None:
        """Send SSUBSCRIBE to the slot's owner; its confirmation comes to ``subscribed``."""
        async with self._lock:
            self._wanted.add(name)
            try:
                await self._cluster.initialize()  # the slot map, read once
                await self._send(name, self._cluster.get_node_from_key(name))
            except (RedisError, RedisClusterException, OSError):
                self._wake()  # the healer subscribes it once the cluster answers
                raise

    async def unsubscribe(self, name: bytes) -> None:
        async with self._lock:
            self._wanted.discard(name)
            node = self._where.pop(name, None)
            if node is not None:
                await self._leave(node, name)

    def where(self, name: bytes) -> str | None:
        """The node (``host:port``) a channel is subscribed on."""
        return self._where.get(name)

    async def close(self) -> None:
        if self._healer is not None:
            self._healer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._healer
        for node in list(self._links):
            await self._drop(node)

    # -- links ----------------------------------------------------------------------------
    def _link(self, node: ClusterNode) -> _Link:
        link = self._links.get(node.name)
        if link is None:
            kwargs = {key: value for key, value in node.connection_kwargs.items()
                      if key not in _CLUSTER_ONLY}
            # no retries inside redis-py: the reader reports a failure at once, so the healer
            # can look for a new owner while redis-py reconnects on the next read
            kwargs["retry"] = Retry(NoBackoff(), 0)
            pool = aioredis.ConnectionPool(connection_class=node.connection_class, **kwargs)
            link = self._links[node.name] = _Link(node.name, pool, PubSub(pool))
        return link

    async def _send(self, name: bytes, node: ClusterNode) -> None:
        link = self._link(node)
        self._where[name] = node.name  # before: its reader may see the confirmation first
        try:
            await link.pubsub.ssubscribe(name)
        except BaseException:
            if self._where.get(name) == node.name:
                del self._where[name]
            raise
        if link.reader is None:  # a reader needs the connection the first command opened
            link.reader = asyncio.get_running_loop().create_task(
                self._read(link), name=f"ssubscribe {node.name}")

    async def _leave(self, node: str, name: bytes) -> None:
        """Give up ``name`` on ``node`` (best effort: the node may be gone)."""
        link = self._links.get(node)
        if link is None:
            return
        link.pubsub.shard_channels.pop(name, None)  # not subscribed again on a reconnect
        if not link.broken:
            with contextlib.suppress(RedisError, OSError):
                await link.pubsub.sunsubscribe(name)

    async def _drop(self, node: str) -> None:
        link = self._links.pop(node)
        if link.reader is not None:
            link.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.reader
        with contextlib.suppress(RedisError, OSError):
            await link.pubsub.aclose()
        with contextlib.suppress(RedisError, OSError):
            await link.pool.disconnect()

    async def _read(self, link: _Link) -> None:
        delay = HEAL_AFTER_S
        while True:
            try:
                message = await link.pubsub.get_message(timeout=None)  # block: no timer
            except asyncio.CancelledError:
                raise
            except AskError as exc:  # MOVED or ASK: this node does not serve that slot now
                self._refused(link, exc.slot_id)
                continue
            except ResponseError as exc:
                log.warning("node %s refused a shard subscription: %s", link.node, exc)
                self._wake()
                continue
            except (RedisError, OSError) as exc:
                if not link.broken:
                    log.warning("sharded pub/sub connection to %s lost: %s", link.node, exc)
                link.broken = True
                if link.pubsub.connection is not None:  # the next read connects afresh and
                    with contextlib.suppress(RedisError, OSError):  # subscribes again
                        await link.pubsub.connection.disconnect()
                for name, node in list(self._where.items()):
                    if node == link.node:
                        self._lost(name)
                self._wake()
                await asyncio.sleep(delay)  # then the next read reconnects, or fails again
                delay = min(delay * 2, HEAL_MAX_WAIT_S)
                continue
            link.broken, delay = False, HEAL_AFTER_S
            if message is None:
                continue
            kind, name = message["type"], message["channel"]
            if kind == "smessage":
                self._arrived(name, message["data"])
            elif kind == "ssubscribe":
                if self._where.get(name) == link.node:
                    self._subscribed(name)
            elif kind == "sunsubscribe" and name in link.pubsub.shard_channels:
                # the node dropped it (its slot moved away): redis-py still lists it
                del link.pubsub.shard_channels[name]
                if self._where.get(name) == link.node:
                    del self._where[name]
                    self._lost(name)
                self._wake()

    def _refused(self, link: _Link, slot: int) -> None:
        """``link``'s node answered an SSUBSCRIBE for ``slot`` with a redirection."""
        for name, node in list(self._where.items()):
            if node == link.node and self._cluster.keyslot(name) == slot:
                del self._where[name]
                link.pubsub.shard_channels.pop(name, None)
                self._lost(name)
        self._wake()

    # -- healing --------------------------------------------------------------------------
    def _wake(self) -> None:
        self._heal.set()
        if self._healer is None or self._healer.done():
            self._healer = asyncio.get_running_loop().create_task(self._heal_loop(),
                                                                  name="sharded healer")

    async def _heal_loop(self) -> None:
        delay = HEAL_AFTER_S
        while True:
            await self._heal.wait()
            await asyncio.sleep(delay)
            self._heal.clear()
            try:
                async with self._lock:
                    await self._cluster.nodes_manager.initialize()
                    await self._reconcile()
            except (RedisError, RedisClusterException, OSError) as exc:
                log.warning("sharded pub/sub: cluster not settled, again in %.2fs: %s",
                            delay, exc)
                self._heal.set()
                delay = min(delay * 2, HEAL_MAX_WAIT_S)
                continue
            delay = HEAL_AFTER_S

    async def _reconcile(self) -> None:
        """Every wanted channel subscribed on its slot's owner per the fresh map."""
        for name in list(self._wanted):
            owner = self._cluster.get_node_from_key(name)
            node = self._where.get(name)
            if node == owner.name:
                continue
            if node is not None:
                del self._where[name]
                await self._leave(node, name)
                self._lost(name)
            await self._send(name, owner)
            self.moves += 1
            log.info("shard channel %r now on %s (was %s)", name, owner.name, node)
        used = set(self._where.values())
        for node in list(self._links):
            if node not in used and self._cluster.get_node(node_name=node) is None:
                await self._drop(node)  # a node that left the cluster
