"""The gateway core: what one ingress replica does for its sockets, independent of Serve.

It authenticates before the upgrade, opens (or resumes) the user's session entity, follows
topics through the replica's single Redis subscriber, and hands frames to its router: the
routes the kinds' channel specs imply, and the hand-written ones of ``serve.topics``,
``serve.chat`` and ``serve.playlists``. Evictions over the per-user cap reach the gateway
holding the old socket through a control channel of its own in Redis.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from actors.channels import CHANNELS
from actors.client import ActorSystem, EntityRef
from actors.recommend import Recommendations
from fanout.connect import client as redis_client
from fanout.exports import export_policy
from fanout.streams import Position, position
from fanout.subscriber import TopicHub
from notify import templates
from rthub.config import Settings
from rthub.errors import Conflict, Forbidden, HubError, RateLimited, Unauthorized, Unavailable
from serve import chat, playlists, protocol, topics
from serve.analytics import Analytics
from serve.auth import Identity, TokenRevoked, TokenVerifier, refreshed
from serve.autoscaling import reported
from serve.channel_routes import channel_routes
from serve.connection import GONE, Connection
from serve.control import Control
from serve.metrics import GatewayMetrics
from serve.router import Router
from serve.security.audit import SecurityAudit, claimed_tenant
from serve.security.limits import RateLimiter
from serve.security.network import NetworkPolicy
from serve.security.revocation import Revocations
from serve.system_events import SystemEvents
from serve.wire import Batcher, Outgoing
from storage.blobs import open_blob_store
from storage.crypto import keyring
from storage.postgres import open_pool

log = logging.getLogger(__name__)

CONNECT_RETRY_S = (0.1, 0.3, 1.0, 2.0)  # while a restarted host comes back
# waits for an old socket's end to be recorded (its gateway may be waiting for a restarted
# session host: CONNECT_RETRY_S)
RESUME_RETRY_S = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


GAP_READ_TRIES = (0.1, 0.3, 1.0, 3.0)  # reading a gap back while Redis comes back


def outgoing(event: dict[str, Any]) -> Outgoing:
    """The client frame of a stream event (PROTOCOL.md "Topics, streams and recovery")."""
    envelope = {"type": event["type"], "topic": event["topic"], "content": event["content"],
                "timestamp": protocol.timestamp(event["ts"])}
    if "seq" in event:
        envelope["seq"] = event["seq"]
    return Outgoing(envelope, event.get("removes"))


def close_code(err: HubError) -> int:
    """The close code of a socket refused after its upgrade (PROTOCOL.md)."""
    if isinstance(err, TokenRevoked):
        return 4410
    if isinstance(err, RateLimited):
        return 4429
    if isinstance(err, Unauthorized):
        return 4401
    return 4403 if isinstance(err, Forbidden) else 1011


class GatewayCore(Control):
    """Sockets of one replica and everything they share (housekeeping: ``serve.control``)."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics | None = None) -> None:
        if settings.redis_url is None or settings.postgres_url is None:
            raise ValueError("the gateway needs resolved POSTGRES_URL and REDIS_URL")
        self.settings = settings
        self.gateway_id = f"gw-{secrets.token_hex(6)}"
        self.verifier = TokenVerifier(settings.jwt_secret, settings.jwt_jwks,
                                      settings.jwt_audience, settings.jwt_issuer,
                                      settings.jwt_jwks_refresh_s)
        self.network = NetworkPolicy.from_settings(settings)
        self.system = ActorSystem(settings)
        self.keyring = keyring(settings.encryption_keys)
        self.templates = templates.load(settings.notify_catalog, settings.notify_locale)
        self.blobs = open_blob_store(settings.blob_store, settings.data_dir, settings.s3_endpoint)
        self.redis = redis_client(settings.redis_url)  # a single Redis or a cluster
        self.hub = TopicHub(settings.redis_url, prepare=self._arrived)
        self.limits = RateLimiter(self.redis, settings.rate_limits)
        self.revocations = Revocations(self.redis)
        self.verifier.revoked = self.revocations.check
        self.audit = SecurityAudit(self.db)
        self.metrics = metrics or GatewayMetrics()
        self.connections: dict[str, Connection] = {}
        self.router = Router(channel_routes(CHANNELS.values()), topics.ROUTES, chat.ROUTES,
                             playlists.ROUTES)
        self.batcher = Batcher()
        self.metrics.socket_writes.read = lambda: self.batcher.writes
        # read on scrape from the sockets themselves: nothing kept in step on the hot path
        self.metrics.in_flight.set_function(
            lambda: sum(c.in_flight for c in self.connections.values()))
        self.metrics.paused.set_function(
            lambda: sum(c.paused for c in self.connections.values()))
        self.metrics.shed.counts = self.system.shed  # the actor system counts its refusals
        self.recommendations = Recommendations(settings, self.db)
        self.metrics.recommendations.counts = self.recommendations.outcomes
        self.metrics.queue_depth.set_function(self.system.queue_depth)
        self.metrics.queue_delay.set_function(self.system.queue_delay)
        self.metrics.rate_limited.counts = self.limits.refused
        self.metrics.rate_limit_errors.read = lambda: self.limits.errors
        self.metrics.audit_dropped.read = lambda: self.audit.dropped
        self.events = SystemEvents(self.redis, export_policy(settings), self.gateway_id)
        self.metrics.events_dropped.counts = self.events.dropped
        self.analytics = Analytics(self.metrics.analytics, self.metrics.delivery_latency.counts)
        self.metrics.sockets.sockets = lambda: ((c.identity, c.positions)
                                                for c in self.connections.values())
        self.metrics.host_queues.system = self.system
        self.metrics.autoscaling.stats = lambda: reported(len(self.connections))
        self.metrics.autoscaling.settings = settings
        self._emptied = asyncio.Event()  # set when the last socket of a draining gateway ends
        self._pool: asyncpg.Pool | None = None
        self._control_ready = False
        self._background: list[asyncio.Task] = []  # control listener, drain watcher
        self._tasks: set[asyncio.Task] = set()  # short jobs started from callbacks
        self.draining = False
        self.stop_listening: Callable[[], None] | None = None  # the replica's own port

    async def start(self) -> None:
        """Before the first client: the revocation list read and the housekeeping started
        (an HTTP-only replica needs both too). Redis down: the timer tries again."""
        try:
            await self.revocations.reload_if_changed()
        except Exception as err:
            log.warning("revocation list not read yet (retried every tick): %s", err)
        await self._ensure_control()

    # -- a socket's life ----------------------------------------------------------------------
    def identify(self, authorization: str, query_token: str | None,
                 path_user: str | None, ip: str | None = None) -> Identity:
        """Check the token before the upgrade; raise ``Unauthorized`` / ``Forbidden`` (and
        audit the refusal)."""
        token = (authorization[7:].strip() if authorization.lower().startswith("bearer ")
                 else None) or query_token
        try:
            if not token:
                raise Unauthorized("no token: send 'Authorization: Bearer <jwt>' or '?token='")
            identity = self.verifier.verify(token)
            if path_user is not None and path_user != identity.user:
                raise Forbidden("the user in the URL is not the token's subject")
        except HubError as err:
            self.audit.record(claimed_tenant(token), "-", "auth.failed", ip,
                              reason=err.message, verified=False)
            raise
        return identity

    def reauthorize(self, conn: Connection, token: str) -> int:
        """``session.refresh``: a fresh token for an open socket, of the same user and tenant;
        the socket's identity becomes the new token's (its ``exp`` is what the timer closes
        the socket at). A token that does not verify, or names someone else, changes
        nothing and is audited as a failed authentication."""
        try:
            identity = refreshed(self.verifier, conn.identity, token)
        except HubError as err:
            self.audit.record(conn.identity.tenant, conn.identity.user, "auth.failed",
                              conn.ip, reason=f"session.refresh: {err.message}")
            raise
        conn.identity = identity
        return identity.expires_at

    def admit(self, conn: Connection) -> None:
        """The address rules, for a socket that has just opened (``AddressRefused``)."""
        try:
            self.network.check(conn.ip)
        except HubError as err:
            self.audit.record(conn.identity.tenant, conn.identity.user, "ip.refused",
                              conn.ip, reason=err.message)
            raise

    def denied(self, conn: Connection, frame_type: str, err: HubError) -> None:
        """A request answered ``forbidden``, or a flood: into the audit log."""
        self.audit.record(conn.identity.tenant, conn.identity.user,
                          "permission.denied" if isinstance(err, Forbidden) else "rate.flood",
                          conn.ip, type=frame_type, reason=err.message)

    def accept(self, conn: Connection) -> None:
        """A socket is open: open (or resume) its session, then welcome it."""
        self.connections[conn.id] = conn
        self.metrics.connections.inc()
        self.spawn(self._open(conn))

    async def _open(self, conn: Connection) -> None:
        try:
            self.admit(conn)
            if self.limits.active:
                await self.limits.check("connect", conn.identity.tenant, conn.identity.user,
                                        conn.ip, frame=False)
            await self._ensure_control()
            welcome, positions = await self._open_session(conn, conn.resume)
        except HubError as err:
            self.metrics.refused.labels(err.code).inc()
            conn.close(close_code(err), err.message)
            return
        if conn.state == GONE:  # it went while its session opened: record its end now
            await self._close_session(conn)
            return
        conn.send(welcome)
        self.events.connected(conn, resumed=bool(conn.resume))
        try:
            await self._restore(conn, positions)
        finally:
            conn.opened()
            if conn.state == GONE:
                await self._close_session(conn)

    def ended(self, conn: Connection, was_open: bool) -> None:
        """``conn``'s socket is gone; its session forgets it (unless it never opened)."""
        if self.connections.pop(conn.id, None) is not None:
            self.metrics.connections.dec()
            self.analytics.ended(conn.identity.tenant, time.monotonic() - conn.opened_at)
        if conn.welcomed_ms:  # welcomed: its connect was recorded
            self.events.disconnected(conn)
        if not self.connections:
            self._emptied.set()  # what a drain waits for
        if was_open:
            self.spawn(self._close_session(conn))

    def spawn(self, job: Any) -> None:
        """Run a short job of the gateway's, keeping a reference until it ends; a job that
        fails is logged (nothing awaits it). It starts in a context of its own: a job started
        while a client request runs (a socket closed mid-reply) is not that request's, and
        must not pass admission control as if it were."""
        task = asyncio.get_running_loop().create_task(job, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a gateway job failed: %r", error, exc_info=error)

    async def _open_session(self, conn: Connection, resume: str | None
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        session = self.session(conn.identity)
        base = {"connection_id": conn.id, "gateway": self.gateway_id}
        if resume:
            reply = await self._resume(session, {**base, "resume_token": resume},
                                       conn.identity.tenant)
        else:
            reply = await self._connect(session, base)
        conn.session_id = reply["session_id"]
        await self._evict(conn.identity.tenant, reply["evicted"])
        welcome = {"type": "session.welcome", "content": {
            "session_id": reply["session_id"], "user_id": conn.identity.user,
            "tenant": conn.identity.tenant, "server_time_ms": int(time.time() * 1000),
            "heartbeat_s": self.settings.ws_heartbeat_interval,
            "max_in_flight": self.settings.max_in_flight,
            "resume_token": reply["resume_token"], "connection_id": conn.id,
            "gateway": self.gateway_id, "resumed": bool(resume)}}
        return welcome, reply.get("positions", {})

    async def _connect(self, session: EntityRef, request: dict[str, Any]) -> dict[str, Any]:
        """``session.connect``, tried again while the session's host restarts (the request
        names this connection, so a repeat registers it once)."""
        return await self._asked_again(session, "session.connect", request)

    @staticmethod
    async def _asked_again(session: EntityRef, message: str, request: dict[str, Any]
                           ) -> dict[str, Any]:
        """Ask, and again while the session's host restarts: the request names this
        connection, so a repeat of one that took place gets the same answer."""
        for delay in CONNECT_RETRY_S:
            try:
                return await session.ask(message, request)
            except Unavailable:
                await asyncio.sleep(delay)
        return await session.ask(message, request)

    async def _resume(self, session: EntityRef, request: dict[str, Any], tenant: str
                      ) -> dict[str, Any]:
        """Resume, first closing the old socket if its gateway has not noticed it drop.
        A gateway that died with the socket (its node lost, its process killed) never
        records the end: once it has missed its ALIVE_S this one records it instead, with
        no positions (those died with it: the topics come back ``recovered: false``)."""
        for delay in (*RESUME_RETRY_S, None):
            reply = await self._asked_again(session, "session.resume", request)
            if "pending" not in reply:
                return reply
            if delay is None:
                break
            pending = reply["pending"]
            await self._evict(tenant, [pending], 4409, "resumed elsewhere")
            if pending["gateway"] != self.gateway_id and not await self.gateway_alive(
                    pending["gateway"]):
                log.info("recording the end of %s for gateway %s, which is gone",
                         pending["connection_id"], pending["gateway"])
                await self._asked_again(session, "session.disconnect",
                                        {"connection_id": pending["connection_id"]})
                continue
            await asyncio.sleep(delay)
        raise Conflict("the connection to resume is still open; try again")

    async def _restore(self, conn: Connection, positions: dict[str, Any]) -> None:
        """After a resume: follow every topic again and replay what was missed."""
        for topic, since in positions.items():
            await self.follow(conn, topic, tuple(since) if since else None, None, record=False)

    async def _close_session(self, conn: Connection) -> None:
        for topic in list(conn.positions):
            await self.hub.remove(conn.identity.tenant, topic, conn.deliver)
            self._presence(conn, topic, present=False)
        try:  # asked again while the session's host restarts: a resume waits for this
            await self._asked_again(self.session(conn.identity), "session.disconnect", {
                "connection_id": conn.id, "positions": conn.resume_positions()})
        except HubError as err:  # the session forgets this socket when the user reconnects
            log.warning("could not record the end of %s: %s", conn.id, err)

    # -- topics ---------------------------------------------------------------------------------
    async def follow(self, conn: Connection, topic: str, since: tuple[str, int] | None,
                     frame_id: Any, answer: bool = True, record: bool = True) -> Position:
        """Subscribe ``conn`` to ``topic``; ack, then replay the gap, then go live."""
        tenant = conn.identity.tenant
        conn.catching_up[topic] = []
        try:
            await self.hub.add(tenant, topic, conn.deliver)
            where = await position(self.redis, tenant, topic, since,
                                   self.settings.stream_retention_s)
        except BaseException:
            conn.catching_up.pop(topic, None)
            raise
        if answer:  # an ack to a subscribe, or `subscribed` for a topic a resume restored
            state = {"topic": topic, "epoch": where.epoch, "seq": where.seq,
                     "recovered": where.recovered}
            conn.send(protocol.answer(frame_id, state) if frame_id is not None
                      else {"type": "subscribed", "topic": topic, "content": state})
        start = since[1] if where.recovered and since else where.seq
        conn.positions[topic] = [where.epoch, start, start]
        held = conn.catching_up.pop(topic)
        for event in where.missed:
            conn.deliver(outgoing(event))
        for out in held:
            conn.deliver(out)
        if record:
            self.session(conn.identity).tell("session.follow",
                                             {"connection_id": conn.id, "topic": topic})
        self._presence(conn, topic, present=True)
        return where

    def gap(self, conn: Connection, topic: str) -> None:
        """A live event skipped ``seq``s (its live copy was held in ``catching_up``). Redis
        lost them from pub/sub (a restart, a failover): read them back from the stream; if
        it lost them there too, the client is told with ``subscribed`` and ``recovered:
        false`` and reloads, as after a resume that cannot recover."""
        self.metrics.gaps.count += 1
        log.info("%s on %s: seq %s after %s; reading back", conn.id, topic,
                 conn.catching_up[topic][0].seq, conn.positions[topic][1])
        self.spawn(self._fill(conn, topic))

    async def _fill(self, conn: Connection, topic: str) -> None:
        held = conn.catching_up.get(topic)
        epoch, last, _ = conn.positions[topic]
        for delay in (*GAP_READ_TRIES, None):  # a pooled connection may predate the fault
            try:
                where = await position(self.redis, conn.identity.tenant, topic, (epoch, last),
                                       self.settings.stream_retention_s)
                break
            except Exception as exc:
                if delay is None:  # Redis is away again: the client resumes later
                    log.warning("reading back a gap of %s failed: %s", topic, exc)
                    conn.catching_up.pop(topic, None)
                    conn.close(1011, "stream unavailable; reconnect and resume")
                    return
                await asyncio.sleep(delay)
        if conn.catching_up.get(topic) is not held or topic not in conn.positions:
            return  # unfollowed (or followed anew) meanwhile
        del conn.catching_up[topic]
        if where.recovered:
            for event in where.missed:
                conn.deliver(outgoing(event))
        else:
            conn.send({"type": "subscribed", "topic": topic, "content": {
                "topic": topic, "epoch": where.epoch, "seq": where.seq, "recovered": False}})
            conn.positions[topic] = [where.epoch, where.seq, where.seq]
        for out in held or ():
            conn.deliver(out)

    async def unfollow(self, conn: Connection, topic: str) -> None:
        if conn.positions.pop(topic, None) is not None:
            await self.hub.remove(conn.identity.tenant, topic, conn.deliver)
            self.session(conn.identity).tell("session.unfollow",
                                             {"connection_id": conn.id, "topic": topic})
            self._presence(conn, topic, present=False)

    def removed(self, conn: Connection, topic: str) -> None:
        """``conn``'s user left the room, here or on another device, or was removed."""
        self.spawn(self.unfollow(conn, topic))

    def _presence(self, conn: Connection, topic: str, present: bool) -> None:
        """A socket following a room is one of its user's devices there."""
        kind, _, ident = topic.partition(":")
        channel = CHANNELS.get(kind)
        if channel is None or not channel.presence:
            return
        entity = self.system.ref(channel.kind, ident, conn.identity.tenant)
        if present:
            entity.tell("presence.attach", {
                "user": conn.identity.user, "device": conn.id, "name": conn.identity.name})
        else:
            entity.tell("presence.detach", {"user": conn.identity.user, "device": conn.id})

    def _arrived(self, event: dict[str, Any]) -> Outgoing:
        """A live event reached this replica: its frame, built once for all local sockets."""
        self.metrics.delivery_latency.observe(max(time.time() * 1000 - event["ts"], 0) / 1000)
        self.analytics.arrived(event)
        return outgoing(event)

    # -- entities, storage, control ---------------------------------------------------------
    def session(self, identity: Identity) -> EntityRef:
        return self.system.ref("session", identity.user, identity.tenant)

    def ref(self, kind: str, ident: str, tenant: str) -> EntityRef:
        return self.system.ref(kind, ident, tenant)

    async def handle(self, conn: Connection, frame: dict[str, Any]) -> dict | None:
        return await self.router.dispatch(self, conn, frame)

    def replied(self, message_type: str, reply: dict[str, Any]) -> None:
        """An entity answered a message passed straight to it: what the metrics read."""
        observe = self.metrics.replies.get(message_type)
        if observe is not None:
            observe(reply)

    async def db(self) -> asyncpg.Pool:
        """The replica's Postgres pool for reads (history, search, attachments, audit)."""
        if self._pool is None:  # migrated here too: an upload may come before any entity runs
            self._pool = await open_pool(self.settings.postgres_url, self.settings.pg_pool_size)
        return self._pool
