"""Topic streams in Redis: publish once, keep a bounded history, replay a gap.

Per topic (keys hash-tagged so a Redis Cluster keeps them in one slot):

* ``rthub:s:{tenant/topic}`` a Redis stream; entry id ``<seq>-1`` (the owning entity assigns
  ``seq``, strictly increasing, no gaps), trimmed to about RTHUB_STREAM_RETENTION_EVENTS;
* ``rthub:e:{tenant/topic}`` the epoch: a random id made when the history starts; if Redis
  loses the history it loses the epoch too, so a client holding the old one learns that
  recovery is impossible (PROTOCOL.md "Topics, streams and recovery");
* ``rthub:c:{tenant/topic}`` the pub/sub channel gateways subscribe to.

On a Redis Cluster the three hash to one slot (the tag is the same text in each, whatever the
topic holds, and never empty), so every command about a topic goes to one node: ``position``'s
pipeline is single-slot, and ``publish`` splits a batch by node, each topic's XADD and
SPUBLISH staying in order on its node. The channel is a sharded one there (SPUBLISH /
SSUBSCRIBE, Redis 7: a publish stays on the slot's shard instead of crossing the whole cluster
bus); on a single Redis it is plain PUBLISH / SUBSCRIBE, as before (the embedded Redis is 6.2).

An event travels as msgpack ``{type, topic, seq, content, ts}``, with ``removes`` (a user who
loses the topic on every device once it is delivered) when the entity named one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from hiredis import pack_command
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from fanout.connect import Client
from fanout.exports import Policy, collect, command


def _tag(tenant: str, topic: str) -> str:
    return "{" + f"{tenant}/{topic}" + "}"


def stream_key(tenant: str, topic: str) -> str:
    return f"rthub:s:{_tag(tenant, topic)}"


def epoch_key(tenant: str, topic: str) -> str:
    return f"rthub:e:{_tag(tenant, topic)}"


def channel(tenant: str, topic: str) -> str:
    return f"rthub:c:{_tag(tenant, topic)}"


def stream_of(channel_name: bytes) -> bytes:
    """The stream key of a topic's channel (``rthub:c:{t/x}`` -> ``rthub:s:{t/x}``)."""
    return b"rthub:s:" + channel_name.removeprefix(b"rthub:c:")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a topic's stream, as published."""

    tenant: str
    topic: str
    seq: int | None  # None: ephemeral, published live but not kept
    type: str
    content: dict[str, Any]
    ts_ms: int
    removes: str | None = None
    source: tuple[str, str] | None = None  # (kind, id) of the entity: not sent, for the outbox

    def pack(self) -> bytes:
        event = {"type": self.type, "topic": self.topic, "content": self.content,
                 "ts": self.ts_ms}
        if self.seq is not None:
            event["seq"] = self.seq
        if self.removes is not None:
            event["removes"] = self.removes
        return msgpack.packb(event, use_bin_type=True)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a topic's stream stands, and what a resuming client missed."""

    epoch: str
    seq: int
    recovered: bool
    missed: list[dict[str, Any]]


PUBLISH_TIMEOUT_S = 10.0  # a batch Redis has not answered by then is retried


async def publish(client: Client, events: Sequence[StreamEvent], retention_events: int,
                  exports: Policy | None = None) -> None:
    """Append to each stream and publish, in order, in one round trip (one per node on a
    cluster).

    Republishing a seq already in the stream (a retry) is skipped in the stream; the live copy
    goes out again and subscribers drop it by ``seq``. The commands are packed by hiredis and
    written at once on a pooled connection, and the replies read without a timer each (one
    bounds the batch): the host's cost per event is little more than the bytes. With
    ``exports``, the family events the batch makes (``fanout.exports``) go in the same round
    trip, one script per tenant's family.
    """
    if isinstance(client, RedisCluster):
        await _publish_sharded(client, events, retention_events, exports)
        return
    parts = _commands(events, retention_events, "PUBLISH")
    if exports is not None:
        parts.extend(command(batch, exports) for batch, _ in collect(events, exports))
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        failed = await _send(conn, parts)
    except BaseException:
        await conn.disconnect()  # replies may still be on their way: never reuse it
        raise
    finally:
        await pool.release(conn)
    if failed is not None:
        raise failed


class Unpublished(RedisError):
    """Part of a batch did not reach a cluster (a node failed, a slot moved): ``pending`` are
    those events, each topic's in order; the rest went out and must not be sent again."""

    def __init__(self, cause: BaseException, pending: list[StreamEvent]) -> None:
        super().__init__(f"{len(pending)} events not published: {cause!r}")
        self.pending = pending


def _commands(events: Sequence[StreamEvent], retention_events: int,
              publish_command: str) -> list[bytes]:
    parts = []
    for event in events:
        packed = event.pack()
        if event.seq is not None:  # the epoch is made by the first ``position()`` read
            parts.append(pack_command((
                "XADD", stream_key(event.tenant, event.topic), "MAXLEN", "~", retention_events,
                f"{event.seq}-1", "e", packed)))
        parts.append(pack_command((publish_command, channel(event.tenant, event.topic),
                                   packed)))
    return parts


async def _send(conn: AbstractConnection, parts: list[bytes]) -> ResponseError | None:
    """Write the packed commands at once and read every reply; the first error that is not
    a retried seq (the replies after it are read too, so the connection stays usable)."""
    async with asyncio.timeout(PUBLISH_TIMEOUT_S):
        await conn.send_packed_command(b"".join(parts), check_health=False)
        failed = None
        for _ in parts:
            try:
                await conn.read_response(timeout=math.inf)
            except ResponseError as err:  # that reply is read: the next ones follow
                if failed is None and "equal or smaller" not in str(err):
                    failed = err
    return failed


async def _publish_sharded(client: RedisCluster, events: Sequence[StreamEvent],
                           retention_events: int, exports: Policy | None) -> None:
    """The batch split by the node owning each topic's slot (a topic's keys and channel share
    one), and each family stream's, sent to the nodes at once, SPUBLISH for PUBLISH. What
    failed, or went to a node that no longer owns the slot (MOVED), is raised as
    ``Unpublished`` after the slot map is read again."""
    try:
        await client.initialize()  # the slot map, read once
        groups: dict[str, tuple[ClusterNode, list[StreamEvent], list[bytes]]] = {}
        for event in events:
            node = client.get_node_from_key(channel(event.tenant, event.topic))
            groups.setdefault(node.name, (node, [], []))[1].append(event)
        for _node, batch, parts in groups.values():
            parts.extend(_commands(batch, retention_events, "SPUBLISH"))
        for export, covered in (collect(events, exports) if exports is not None else ()):
            node = client.get_node_from_key(export.key)
            _, batch, parts = groups.setdefault(node.name, (node, [], []))
            batch.extend(covered)  # republished if this node fails
            parts.append(command(export, exports))
    except (RedisError, RedisClusterException, OSError) as exc:
        raise Unpublished(exc, list(events)) from exc
    outcomes = await asyncio.gather(*(_publish_to(node, parts) for node, _, parts
                                      in groups.values()), return_exceptions=True)
    failed: set[int] = set()
    cause: BaseException | None = None
    for (_, batch, _), outcome in zip(groups.values(), outcomes, strict=True):
        if outcome is None:
            continue
        if not isinstance(outcome, Exception):  # cancelled: not a Redis failure
            raise outcome
        failed.update(id(event) for event in batch)
        cause = cause or outcome
    if cause is None:
        return
    with contextlib.suppress(RedisError, RedisClusterException, OSError):
        await client.nodes_manager.initialize()  # failed over or resharded: ask again
    raise Unpublished(cause, [event for event in events if id(event) in failed]) from cause


async def _publish_to(node: ClusterNode, parts: list[bytes]) -> None:
    conn = node.acquire_connection()
    try:
        failed = await _send(conn, parts)
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        node.release(conn)
    if failed is not None:
        raise failed


async def position(client: Client, tenant: str, topic: str,
                   since: tuple[str, int] | None, retention_s: float) -> Position:
    """The topic's epoch and current seq; with ``since``, the events after it if all are kept.

    ``recovered`` is true only when ``since`` names the current epoch and every event after
    its seq is still in the window (count and age); otherwise the client must reload.
    """
    key = stream_key(tenant, topic)
    await client.set(epoch_key(tenant, topic), secrets.token_hex(8), nx=True)
    pipe = client.pipeline(transaction=False)
    pipe.get(epoch_key(tenant, topic))
    pipe.xrevrange(key, count=1)
    if since is not None:
        pipe.xrange(key, min=f"{since[1] + 1}-0")
    epoch_raw, last, *rest = await pipe.execute()
    epoch = epoch_raw.decode() if isinstance(epoch_raw, bytes) else str(epoch_raw)
    current = int(last[0][0].split(b"-")[0]) if last else 0
    if since is None:
        return Position(epoch, current, False, [])
    since_epoch, since_seq = since
    if since_epoch != epoch or since_seq > current:
        return Position(epoch, current, False, [])
    missed = [msgpack.unpackb(fields[b"e"], raw=False) for _, fields in rest[0]]
    oldest_allowed = time.time() * 1000 - retention_s * 1000
    complete = since_seq == current or (
        bool(missed) and missed[0]["seq"] == since_seq + 1 and missed[0]["ts"] >= oldest_allowed
    )
    return Position(epoch, current, complete, missed if complete else [])
