"""A gateway replica's housekeeping: closing sockets other replicas evict (a control channel
per replica in Redis), one heartbeat timer for every socket, presence leases renewed, and
the drain when Serve stops the replica (a mixin of ``serve.gateway.GatewayCore``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from actors.channels import CHANNELS
from fanout import maintenance
from notify.service import ensure_running
from serve import analytics_store
from serve.auth import LEEWAY_S
from serve.maintenance import deliver
from serve.replica_hooks import when_draining
from storage import notifications

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from actors.client import ActorSystem
    from fanout.subscriber import TopicHub
    from rthub.config import Settings
    from serve.analytics import Analytics
    from serve.auth import TokenVerifier
    from serve.connection import Connection
    from serve.metrics import GatewayMetrics
    from serve.security.revocation import Revocations
    from serve.system_events import SystemEvents

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

ALIVE_S = 3.0  # a replica silent this long (its ticks are 1 s) is taken for dead


def alive_key(gateway: str) -> str:
    return f"rthub:gw-alive:{gateway}"


class Control:
    """Evictions, heartbeats, presence leases and drain for ``GatewayCore``."""

    settings: Settings
    gateway_id: str
    connections: dict[str, Connection]
    redis: aioredis.Redis
    hub: TopicHub
    system: ActorSystem
    draining: bool
    stop_listening: Callable[[], None] | None
    _emptied: asyncio.Event
    _background: list[asyncio.Task]
    _control_ready: bool
    _revocation_check_running: bool = False
    verifier: TokenVerifier
    revocations: Revocations
    metrics: GatewayMetrics
    events: SystemEvents
    analytics: Analytics
    _analytics_flushing: bool = False

    def spawn(self, job: Any) -> None: ...

    async def db(self) -> Any: ...

    def _refresh_presence(self) -> None:
        """Renew the lease of every local device, one message per room: a room forgets the
        devices of a gateway that died without detaching them."""
        entities: dict[tuple[str, str, str], list[list[str]]] = {}
        for conn in self.connections.values():
            for topic in conn.positions:
                kind, _, ident = topic.partition(":")
                channel = CHANNELS.get(kind)
                if channel is not None and channel.presence:
                    entities.setdefault((conn.identity.tenant, channel.kind, ident), []).append(
                        [conn.identity.user, conn.id, conn.identity.name])
        for (tenant, kind, ident), devices in entities.items():
            self.system.ref(kind, ident, tenant).tell("presence.refresh", {"devices": devices})

    async def _evict(self, tenant: str, evicted: list[dict[str, str]], code: int = 4409,
                     reason: str = "replaced: too many connections for this user") -> None:
        for item in evicted:
            local = self.connections.get(item["connection_id"])
            if local is not None:
                local.close(code, reason)
            else:
                await self.redis.publish(f"rthub:gw:{item['gateway']}",
                                         msgpack.packb([item["connection_id"], code, reason]))

    async def _ensure_control(self) -> None:
        """Listen on this gateway's control channel (evictions from other replicas) and on
        the maintenance channel every replica shares, export the system events, and watch
        for Serve draining this replica."""
        if self._control_ready:
            return
        self._control_ready = True
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(when_draining(self.drain)))
        self._background.append(loop.create_task(self._heartbeats()))
        self._background.append(loop.create_task(self.events.run()))
        # plain pub/sub on a cluster too (evictions are rare; a publish reaches every node):
        # a cluster client picks the channel's node from its slot map, read first
        await self.redis.initialize()
        pubsub = self.redis.pubsub()
        announcements = maintenance.CHANNEL.encode()
        await pubsub.subscribe(f"rthub:gw:{self.gateway_id}", maintenance.CHANNEL)

        async def listen() -> None:
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                if message["channel"] == announcements:
                    try:
                        deliver(self.connections.values(), message["data"])
                    except (ValueError, KeyError, TypeError) as err:
                        log.warning("a malformed maintenance announcement: %r", err)
                    continue
                connection_id, code, reason = msgpack.unpackb(message["data"])
                conn = self.connections.get(connection_id)
                if conn is not None:
                    conn.close(code, reason)

        self._background.append(loop.create_task(listen()))

    async def _heartbeats(self) -> None:
        """One timer for every socket of the replica (not a task per socket): each socket is
        pinged every WS_HEARTBEAT_INTERVAL from its connect time, and closed (4408) after
        two intervals without a word from the client, or (4401) once its token expired."""
        tick = min(1.0, self.settings.ws_heartbeat_interval / 4)
        next_refresh = time.monotonic() + self.settings.ws_heartbeat_interval
        next_flush = time.monotonic() + self.settings.analytics_flush_s
        while True:
            self.spawn(self._alive())
            await asyncio.sleep(tick)
            now, wall = time.monotonic(), time.time()
            for conn in list(self.connections.values()):
                if conn.next_beat <= now:
                    conn.beat(now)
                # a token proves who is there only until it expires (with the upgrade's
                # leeway); a client keeps its socket by sending session.refresh before that
                if conn.identity.expires_at + LEEWAY_S < wall and conn.close(4401,
                                                                             "token expired"):
                    self.metrics.expired_closed.count += 1
            self._security_tick()
            if now >= next_flush and not self._analytics_flushing:
                next_flush = now + self.settings.analytics_flush_s
                self._analytics_flushing = True
                self.spawn(self.flush_analytics())
            if now >= next_refresh:
                next_refresh = now + self.settings.ws_heartbeat_interval
                self._refresh_presence()
                self.spawn(self._notifications_waiting())

    async def _alive(self) -> None:
        """Say this replica is alive (a key that expires ALIVE_S after the last tick): a
        resume of a socket listed on a replica without it records that socket's end on
        the dead replica's behalf (``GatewayCore._resume``)."""
        with contextlib.suppress(Exception):  # Redis away: resumes wait, as they did
            await self.redis.set(alive_key(self.gateway_id), b"1", px=int(ALIVE_S * 1000))

    async def flush_analytics(self) -> None:
        """Add this replica's counts to the per-minute analytics in Redis, in one pipeline
        (``serve.analytics_store``); on failure they wait for the next flush."""
        self._analytics_flushing = True
        batch, snapshot = self.analytics.take(self.connections.values())
        try:
            recorded = await analytics_store.flush(self.redis, self.gateway_id, batch,
                                                   snapshot)
        except Exception as exc:
            self.metrics.analytics.flush_errors.count += 1
            self.analytics.put_back(batch)
            log.warning("analytics not flushed to Redis (kept for the next flush): %s", exc)
            return
        finally:
            self._analytics_flushing = False
        for kind, tracks in recorded:
            self.analytics.counted_shown(kind, tracks)

    async def gateway_alive(self, gateway: str) -> bool:
        """Whether replica ``gateway`` said it was alive within ALIVE_S (true if Redis
        cannot tell: only a replica known dead is answered for)."""
        try:
            return bool(await self.redis.exists(alive_key(gateway)))
        except Exception:
            return True

    def _security_tick(self) -> None:
        """Keys and revocations, every tick: a rotated JWKS fetched when due, and sockets
        of a token revoked on any replica closed (4410) within one tick."""
        keys = self.verifier.keys
        if keys is not None and keys.due():
            self.spawn(keys.refresh())
        if not self._revocation_check_running:
            self._revocation_check_running = True
            self.spawn(self._revocations_changed())

    async def _revocations_changed(self) -> None:
        try:
            if await self.revocations.reload_if_changed():
                self.close_revoked()
        finally:
            self._revocation_check_running = False

    def close_revoked(self) -> int:
        """Close every local socket whose token the revocation list covers."""
        closed = 0
        for conn in list(self.connections.values()):
            if self.revocations.covers(conn.identity):
                conn.close(4410, "token revoked")
                closed += 1
        self.metrics.revoked_closed.count += closed
        return closed

    async def _notifications_waiting(self) -> None:
        """Notifications wait (a hub restarted, its notifier crashed): have them sent; and
        the delivery figures for ``/metrics``."""
        queued, by_state = await notifications.figures(await self.db())
        if queued:
            ensure_running(self.settings)
        self.metrics.notifications_queued.set(queued)
        gauge = self.metrics.notification_deliveries
        gauge.clear()
        for (channel, state), count in by_state.items():
            gauge.labels(channel, state).set(count)

    async def drain(self) -> None:
        """Graceful shutdown: every socket gets 1012 and resumes elsewhere (idempotent)."""
        if self.draining:
            return
        self.draining = True
        if self.stop_listening is not None:
            self.stop_listening()
        self._emptied.clear()
        for conn in list(self.connections.values()):
            conn.close(1012, "service restart: reconnect with your resume token")
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), 5)
        with contextlib.suppress(Exception):  # the sockets' last events, if Redis takes them
            await asyncio.wait_for(self.events.flush(), 2)
        with contextlib.suppress(Exception):  # the last seconds' counts (bounded wait)
            await asyncio.wait_for(self.flush_analytics(), 2)
        with contextlib.suppress(Exception):
            await self.hub.close()

    async def close(self) -> None:
        """Drain, then stop the housekeeping (a gateway in a process that keeps running:
        ``rthub.realtime``)."""
        await self.drain()
        for task in self._background:
            task.cancel()
        self._background.clear()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
