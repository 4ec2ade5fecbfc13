"""The one place the hub makes Redis clients: a single Redis or a Redis Cluster, same REDIS_URL.

A cluster is recognised by asking the server, once per URL and process: ``INFO cluster``
answers ``cluster_enabled:1`` on a cluster node, and then the client is a
``redis.asyncio.RedisCluster`` seeded with that node; otherwise a plain ``redis.asyncio.Redis``,
made exactly as before (``from_url``). A ``unix://`` URL is a single Redis without asking
(the embedded server; a cluster client cannot follow redirections to other nodes' sockets).

Why a probe and not a ``redis+cluster://`` scheme: REDIS_URL is validated (``redis``,
``rediss``, ``unix``) and passed to other tools as it is, so the same URL must keep working;
and an operator who points the hub at a cluster's node should not have to say so twice. The
probe is one round trip. ``aclient`` makes it without blocking (the actor hosts' publisher and
the gateway's subscriber use it, and retry while Redis is away); ``client`` makes it
synchronously for a constructor that cannot await (the gateway's own client, at replica
start), bounded by ``PROBE_TIMEOUT_S``, and raises if the server cannot be reached: guessing
"single" would leave a cluster deployment sending every keyed command to one node.
"""

from __future__ import annotations

import logging

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
Client = aioredis.Redis | RedisCluster

_cluster: dict[str, bool] = {}  # url -> is a cluster (what the probe said, for this process)


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def _known(url: str) -> bool | None:
    if url.startswith("unix:"):
        return False
    return _cluster.get(url)


def _enabled(info: dict) -> bool:
    return int(info.get("cluster_enabled", 0)) == 1


def _make(url: str, cluster: bool) -> Client:
    if cluster and url not in _cluster:
        log.info("REDIS_URL names a Redis Cluster: keyed commands go to each slot's owner, "
                 "fan-out uses sharded pub/sub")
    _cluster[url] = cluster
    return RedisCluster.from_url(url) if cluster else aioredis.from_url(url)


def client(url: str) -> Client:
    """A client for ``url``, asking the server synchronously the first time (see above)."""
    cluster = _known(url)
    if cluster is None:
        probe = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S,
                                     socket_timeout=PROBE_TIMEOUT_S)
        try:
            cluster = _enabled(probe.info("cluster"))
        except ResponseError:  # INFO refused (a proxy, a renamed command): not a cluster node
            cluster = False
        except redis.RedisError as exc:
            raise redis.ConnectionError(
                f"cannot tell whether REDIS_URL is a single Redis or a cluster: {exc}") from exc
        finally:
            probe.close()
    return _make(url, cluster)


async def aclient(url: str) -> Client:
    """A client for ``url``, asking the server without blocking the first time; raises a
    ``RedisError`` while it cannot be reached (callers retry)."""
    cluster = _known(url)
    if cluster is None:
        probe = aioredis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S,
                                  socket_timeout=PROBE_TIMEOUT_S)
        try:
            cluster = _enabled(await probe.info("cluster"))
        except ResponseError:
            cluster = False
        finally:
            await probe.aclose()
    return _make(url, cluster)
