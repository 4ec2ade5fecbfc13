"""One client socket: reader, bounded writer, heartbeat, and the topics it follows.

Transport only: what each message type does is in ``serve.handlers``. The rules here are
PROTOCOL.md's: a malformed frame gets ``error bad_request`` and the socket stays open, 20 in
a minute close it (4400); an oversized one gets ``too_large``; silence for two heartbeat
intervals closes it (4408); a client that lets RTHUB_SEND_BUFFER_BYTES pile up is closed (4413)
and never slows the others; stream events are delivered in ``seq`` order with duplicates dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from cluster.ingress import behind_haproxy
from rthub.errors import BadRequest, HubError
from serve import protocol
from serve.auth import Identity
from serve.wire import Outgoing, RawWriter

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

MALFORMED_LIMIT = 20
MALFORMED_WINDOW_S = 60.0
CLOSE_WAIT_S = 5.0


class Closing(Exception):
    """Raised inside a connection to close it with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def client_ip(ws: WebSocket, via_haproxy: bool) -> str:
    """The client's address, for the audit log.

    Under direct ingress every socket comes through the hub's HAProxy, which appends the
    client's address as the *last* X-Forwarded-For entry (``cluster.ingress``); entries
    before it are whatever the client sent and prove nothing. Without HAProxy, the peer.
    """
    peer = ws.client.host if ws.client else ""
    if not via_haproxy:
        return peer
    entries = ",".join(ws.headers.getlist("x-forwarded-for")).split(",")
    return entries[-1].strip()[:64] or peer


class Connection:
    """State of one open socket; ``run()`` owns it until it closes.

    Frames leave by one of two paths, never both on one socket so their order holds: the
    fast path writes each frame's bytes straight to the transport (``serve.wire``), the
    ASGI path queues them for a writer task. Either way a socket holding more than
    RTHUB_SEND_BUFFER_BYTES unsent is closed with 4413.
    """

    __slots__ = ("_closing", "_done", "_last_heard", "_limit", "_malformed", "_queue",
                 "_queued_bytes", "_raw", "_unanswered_pings", "_wakeup", "catching_up", "core",
                 "encoding", "id", "identity", "ip", "next_beat", "positions", "session_id",
                 "ws")

    def __init__(self, core: GatewayCore, ws: WebSocket, identity: Identity, encoding: str,
                 connection_id: str) -> None:
        self.core = core
        self.ws = ws
        self.identity = identity
        self.encoding = encoding
        self.id = connection_id
        self.ip = client_ip(ws, behind_haproxy())  # for the audit log
        self.session_id = ""
        # topic -> [epoch, last seq queued (dedupe), last seq the client confirmed (resume)]
        self.positions: dict[str, list[Any]] = {}
        self.catching_up: dict[str, list[Outgoing]] = {}  # topic -> live events held
        # Per-socket state is kept small (an idle socket's memory is the hub's capacity):
        # the queue, its wake-up and the malformed-frame log exist only once needed.
        self._unanswered_pings: list[dict[str, int]] = []  # queued seqs at each ping (<= 4)
        self._limit = core.settings.send_buffer_bytes
        self._raw: RawWriter | None = None
        self._queue: deque[bytes] | None = None  # the ASGI path's frames
        self._queued_bytes = 0
        self._wakeup: asyncio.Event | None = None
        self._malformed: deque[float] | None = None
        self._last_heard = time.monotonic()
        self.next_beat = self._last_heard + core.settings.ws_heartbeat_interval
        self._closing: Closing | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def fast_path(self) -> bool:
        return self._raw is not None

    # -- outgoing ---------------------------------------------------------------------------
    def send(self, envelope: dict[str, Any]) -> None:
        """Send a frame of this socket's own (welcome, ack, error, ping)."""
        if self._closing is not None:
            return
        envelope.setdefault("timestamp", protocol.timestamp())
        self.core.metrics.frames_out.labels(envelope["type"]).inc()
        self._push(Outgoing(envelope))

    def deliver(self, event: Outgoing) -> None:
        """A topic event from the hub: hold it during catch-up, drop it if already sent."""
        topic = event.topic
        held = self.catching_up.get(topic)
        if held is not None:
            held.append(event)
            return
        position = self.positions.get(topic)
        if position is None or self._closing is not None:
            return
        seq = event.seq
        if seq is not None:
            if seq <= position[1]:
                return
            position[1] = seq
        self.core.metrics.deliveries.count += 1
        self._push(event)
        if event.removes is not None and event.removes == self.identity.user:
            self.core.removed(self, topic)  # left or was removed: no more of this room

    def _push(self, out: Outgoing) -> None:
        raw = self._raw
        if raw is not None:
            raw.send(out.wire(self.encoding))
            return
        data = out.payload(self.encoding)
        self._queued_bytes += len(data)
        if self._queued_bytes > self._limit:
            self._too_slow()
            return
        if self._queue is None:
            self._queue, self._wakeup = deque(), asyncio.Event()
        self._queue.append(data)
        self._wakeup.set()

    def _too_slow(self) -> None:
        if self._closing is None:  # counted once, however many writes find it full
            self.core.metrics.slow_closed.count += 1
        self.close(4413, "too slow: send buffer full")

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already sent or queued (idempotent)."""
        if self._closing is None:
            self._closing = Closing(code, reason)
            if self._wakeup is not None:
                self._wakeup.set()
            self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    # -- the socket's life ------------------------------------------------------------------
    async def run(self, first_frames: list[dict[str, Any]],
                  on_open: Callable[[], Awaitable[None]] | None = None) -> None:
        """Send ``first_frames`` (the welcome), run ``on_open`` (a resume's replay), then
        serve client frames until either side closes. Call after the upgrade is accepted."""
        if self.core.settings.ws_fast_path:
            self._raw = RawWriter.find(self.ws, self.core.batcher, self._limit, self._too_slow)
        if self._raw is not None:
            self.core.metrics.fast_path.inc()
        writer = None if self._raw is not None else asyncio.create_task(self._write())
        reader = None
        try:
            for frame in first_frames:
                self.send(frame)
            if on_open is not None:
                await on_open()
            reader = asyncio.create_task(self._read())
            await asyncio.wait([self._done, reader], return_when=asyncio.FIRST_COMPLETED)
            if writer is not None:  # let the writer flush what was queued before the close
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 1.0)
        finally:
            for task in (reader, writer):
                if task is not None:
                    task.cancel()
            if self._raw is not None:
                self.core.metrics.fast_path.dec()
            await self._send_close()

    async def _send_close(self) -> None:
        """The close frame; a client that reads nothing cannot take it, so give up soon."""
        closing = self._closing
        if closing is None:
            return
        if self._raw is not None:
            self._raw.flush()
            if self._raw.congested:
                self._raw.close(closing.code, closing.reason, CLOSE_WAIT_S)
                return
        try:
            await asyncio.wait_for(self.ws.close(closing.code, closing.reason), CLOSE_WAIT_S)
        except TimeoutError:
            if self._raw is not None:
                self._raw.abort()
        except Exception:  # already gone
            pass

    def resume_positions(self) -> dict[str, list[Any]]:
        """Per topic, [epoch, last seq the client confirmed]: a resume replays after it.

        Nothing else proves receipt (Serve's proxy accepts frames for a socket the client has
        already closed), so a resume may repeat up to one heartbeat of events; clients drop
        ``seq <= last_seen`` (PROTOCOL.md), and no event is ever skipped.
        """
        return {topic: [p[0], p[2]] for topic, p in self.positions.items()}

    def confirm(self) -> None:
        """A ``pong``: the client has read everything queued before the oldest open ping."""
        if not self._unanswered_pings:
            return
        for topic, seq in self._unanswered_pings.pop(0).items():
            if (position := self.positions.get(topic)) is not None:
                position[2] = max(position[2], seq)

    async def _write(self) -> None:
        """The ASGI path: one ``send`` per frame, in order."""
        if self._queue is None:
            self._queue, self._wakeup = deque(), asyncio.Event()
        queue, wakeup, binary = self._queue, self._wakeup, self.encoding == protocol.MSGPACK
        while True:
            while not queue:
                if self._closing is not None:
                    return
                wakeup.clear()
                await wakeup.wait()
            frame = queue.popleft()
            self._queued_bytes -= len(frame)
            try:
                if binary:
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame.decode())
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._finish()
                return

    def beat(self, now: float) -> None:
        """A heartbeat (the gateway's one timer calls it): ping, or close a silent socket."""
        interval = self.core.settings.ws_heartbeat_interval
        self.next_beat = now + interval
        if now - self._last_heard > 2 * interval:
            self.close(4408, "heartbeat timeout")
            return
        if len(self._unanswered_pings) < 4:  # bounded; a pong then confirms less, never more
            self._unanswered_pings.append({t: p[1] for t, p in self.positions.items()})
        self.send({"type": "ping", "content": {"server_time_ms": int(time.time() * 1000)}})

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self._finish()
                return
            self._last_heard = time.monotonic()
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            try:
                frame = protocol.decode(data or b"", self.encoding,
                                        self.core.settings.max_frame_bytes)
            except HubError as err:  # malformed or oversized: answered, counted, kept open
                self.core.metrics.errors.labels(err.code).inc()
                self.send(protocol.answer(getattr(err, "ref", None), err.to_content(), ok=False))
                if isinstance(err, BadRequest):
                    self._count_malformed()
                continue
            frame_id = frame.get("id")
            self.core.metrics.frames_in.labels(frame["type"]).inc()
            try:
                reply = await self.core.handle(self, frame)
            except HubError as err:
                self.core.metrics.errors.labels(err.code).inc()
                self.send(protocol.answer(frame_id, err.to_content(), ok=False))
                continue
            except Exception:
                log.exception("handling a %s frame failed", message.get("type"))
                self.send(protocol.answer(frame_id, HubError("internal error").to_content(),
                                          ok=False))
                continue
            if reply is not None:
                self.send(protocol.answer(frame_id, reply))

    def _count_malformed(self) -> None:
        now = time.monotonic()
        if self._malformed is None:
            self._malformed = deque()
        self._malformed.append(now)
        while self._malformed and now - self._malformed[0] > MALFORMED_WINDOW_S:
            self._malformed.popleft()
        if len(self._malformed) >= MALFORMED_LIMIT:
            self.close(4400, f"{MALFORMED_LIMIT} malformed frames in a minute")
