"""One client socket, whatever serves it: incoming frames, bounded sends, heartbeat, topics.

Transport only: what each message type does is the gateway router's (``serve.router``); how
bytes reach the network is the ``Sink``'s (``serve.sockets`` for picows, ``serve.asgi_socket``
for Serve's proxy path). The rules here are PROTOCOL.md's: a malformed frame gets ``error
bad_request`` and the socket stays open, 20 in a minute close it (4400); an oversized one gets
``too_large``; silence for two heartbeat intervals closes it (4408); a client that lets
RTHUB_SEND_BUFFER_BYTES pile up is closed (4413) and never slows the others; stream events are
delivered in ``seq`` order with duplicates dropped.

Requests are pipelined: each frame gets a short-lived task as it arrives, without waiting
for earlier replies, up to RTHUB_MAX_IN_FLIGHT per socket; past that the sink stops reading
the socket (back-pressure, not an unbounded queue). Frames for the same entity (its *lane*,
``room:<id>`` ...) keep the order they were sent in: the next one starts when the one before
has queued its entity message (the routes say which types may) or has finished.
Replies carry ``ref`` and interleave across entities. An idle socket costs no task. A
request's first entity message passes admission control (``actors.client``): under
overload it is answered ``unavailable`` with ``retry_after_ms`` at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from actors.client import admission, on_queued
from rthub.errors import BadRequest, Forbidden, HubError, RateLimited
from serve import protocol
from serve.analytics import WATCHED
from serve.auth import Identity
from serve.router import UNGATED
from serve.wire import Outgoing

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

MALFORMED_LIMIT = 20
MALFORMED_WINDOW_S = 60.0
FLOOD_WINDOW_S = 10.0

OPENING, OPEN, GONE = 0, 1, 2


class Sink(Protocol):
    """How a connection's frames reach its socket."""

    def write(self, out: Outgoing) -> None:
        """Queue one frame (in the connection's encoding) after everything queued before."""

    def close(self, code: int, reason: str) -> None:
        """Send the close frame after what is queued, then end the socket."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Connection:
    """State of one open socket, from the upgrade to ``ended()``."""

    __slots__ = ("_closing", "_delivered", "_held", "_in_flight", "_lanes", "_last_heard",
                 "_malformed", "_paused", "_refused", "_unanswered_pings", "catching_up", "core",
                 "encoding", "id", "identity", "ip", "next_beat", "opened_at", "positions",
                 "resume", "session_id", "sink", "state", "welcomed_ms")

    def __init__(self, core: GatewayCore, sink: Sink, identity: Identity, encoding: str,
                 connection_id: str, ip: str, resume: str | None = None) -> None:
        self.core = core
        self.sink = sink
        self.identity = identity
        self.encoding = encoding
        self.id = connection_id
        self.ip = ip  # the client's address (``NetworkPolicy.client_ip``): rules, audit
        self.resume = resume  # the resume token the client came back with
        self.session_id = ""
        self.welcomed_ms = 0  # when the welcome went out (``system.connect``); 0 before
        self.state = OPENING
        # topic -> [epoch, last seq queued (dedupe), last seq the client confirmed (resume)]
        self.positions: dict[str, list[Any]] = {}
        self.catching_up: dict[str, list[Outgoing]] = {}  # topic -> live events held
        # Per-socket state is kept small (an idle socket's memory is the hub's capacity):
        # the lanes, held frames and malformed-frame log exist only once needed.
        self._unanswered_pings: list[dict[str, int]] = []  # queued seqs at each ping (<= 4)
        self._held: deque[dict[str, Any]] | None = None  # sent before the welcome went out
        # lane -> frames waiting for the one running in it (a lane is present while busy)
        self._lanes: dict[str, deque[dict[str, Any]]] | None = None
        self._in_flight = 0  # frames received and not yet answered
        self._paused = False
        self._malformed: deque[float] | None = None
        self._refused: deque[float] | None = None  # rate_limited answers (a flood closes)
        self._last_heard = self.opened_at = time.monotonic()  # opened_at: session duration
        self.next_beat = self._last_heard + core.settings.ws_heartbeat_interval
        self._closing: tuple[int, str] | None = None
        self._delivered = core.metrics.deliveries  # counted per socket: kept at hand

    # -- outgoing ---------------------------------------------------------------------------
    def send(self, envelope: dict[str, Any]) -> None:
        """Send a frame of this socket's own (welcome, ack, error, ping)."""
        if self._closing is not None:
            return
        envelope.setdefault("timestamp", protocol.timestamp())
        self.core.metrics.frames_out.add(envelope["type"])
        self.sink.write(Outgoing(envelope))

    def deliver(self, event: Outgoing) -> None:
        """A topic event from the hub: hold it during catch-up, drop it if already sent.
        (Called for every local member of a topic: the fan-out's per-socket cost.)"""
        topic = event.topic
        if self.catching_up and (held := self.catching_up.get(topic)) is not None:
            held.append(event)
            return
        position = self.positions.get(topic)
        if position is None or self._closing is not None:
            return
        seq = event.seq
        if seq is not None:
            if seq <= position[1]:
                return
            if seq > position[1] + 1:  # Redis lost events: read them back, or say so
                self.catching_up[topic] = [event]
                self.core.gap(self, topic)
                return
            position[1] = seq
        self._delivered.count += 1
        self.sink.write(event)
        if event.removes is not None and event.removes == self.identity.user:
            self.core.removed(self, topic)  # left or was removed: no more of this room

    def too_slow(self) -> None:
        """The sink holds more than RTHUB_SEND_BUFFER_BYTES unsent: close with 4413."""
        if self._closing is None:  # counted once, however many writes find it full
            self.core.metrics.slow_closed.count += 1
        self.close(4413, "too slow: send buffer full")

    def close(self, code: int, reason: str) -> bool:
        """Close after the frames already sent or queued (idempotent); whether this call
        closed it."""
        if self._closing is not None:
            return False
        self._closing = (code, reason)
        self.sink.close(code, reason)
        return True

    def peer_closed(self, code: int | None) -> None:
        """The client sent a close frame (with ``code``): what ``system.disconnect`` reports
        unless the hub had closed the socket first."""
        if self._closing is None:
            self._closing = (int(code) if code else 1005, "closed by the client")

    @property
    def close_code(self) -> int:
        """The hub's close code, the client's, or 1006 (the socket broke)."""
        return self._closing[0] if self._closing is not None else 1006

    # -- incoming ---------------------------------------------------------------------------
    def received(self, data: str | bytes) -> None:
        """One whole client message from the sink: started now, or after the welcome, or
        after the frame before it in its lane."""
        self._last_heard = time.monotonic()
        if self._closing is not None:
            return
        try:
            frame = protocol.decode(data, self.encoding, self.core.settings.max_frame_bytes)
        except HubError as err:  # malformed or oversized: answered, counted, kept open
            self.core.metrics.errors.add(err.code)
            self.core.events.failed(self, "", err.code, err.message)  # no type to name
            self.send(protocol.answer(getattr(err, "ref", None), err.to_content(), ok=False))
            if isinstance(err, BadRequest):
                self._count_malformed()
            return
        self._in_flight += 1
        if self._in_flight >= self.core.settings.max_in_flight and not self._paused:
            self._pause(True)
        if self.state == OPEN:
            self._admit(frame)
        else:
            if self._held is None:
                self._held = deque()
            self._held.append(frame)

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (what RTHUB_MAX_IN_FLIGHT bounds)."""
        return self._in_flight

    @property
    def paused(self) -> bool:
        """Not read until enough of its requests are answered."""
        return self._paused

    def heard(self) -> None:
        """Any sign of life from the client (a control frame, say)."""
        self._last_heard = time.monotonic()

    def opened(self) -> None:
        """The welcome is out and a resume's replay done: handle what the client sent."""
        if self.state == OPENING:
            self.state = OPEN
            held, self._held = self._held, None
            while held:
                self._admit(held.popleft())

    def _admit(self, frame: dict[str, Any]) -> None:
        key = self.core.router.lane(frame)
        if key is not None:
            if self._lanes is None:
                self._lanes = {}
            waiting = self._lanes.get(key)
            if waiting is not None:  # the lane is busy: after the frames before it
                waiting.append(frame)
                return
            self._lanes[key] = deque()
        self.core.spawn(self._run(frame, key))

    def _next_in(self, key: str) -> None:
        """The running frame of lane ``key`` has queued its entity message or finished."""
        lanes = self._lanes
        assert lanes is not None
        waiting = lanes[key]
        if waiting and self.state == OPEN:
            self.core.spawn(self._run(waiting.popleft(), key))
        else:
            del lanes[key]

    async def _run(self, frame: dict[str, Any], key: str | None) -> None:
        released = key is None

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._next_in(key)

        # this task's own context (a fresh one: ``core.spawn``): its first entity message
        # passes admission control, and for pipelined types frees the lane once queued
        if frame["type"] not in UNGATED:
            admission.set(f"{self.identity.tenant}:{self.identity.user}")
        if not released and frame["type"] in self.core.router.pipelined:
            on_queued.set(release)
        try:
            await self._handle(frame)
        finally:
            release()
            self._in_flight -= 1
            if self._paused and self._in_flight <= self.core.settings.max_in_flight // 2:
                self._pause(False)

    def _pause(self, paused: bool) -> None:
        self._paused = paused
        if paused:
            self.sink.pause_reading()
        else:
            self.sink.resume_reading()

    async def _handle(self, frame: dict[str, Any]) -> None:
        frame_id = frame.get("id")
        core = self.core
        kind = frame["type"]
        core.metrics.frames_in.add(kind)
        try:
            if core.limits.active and kind != "pong":  # a pong keeps the socket alive
                identity = self.identity
                await core.limits.check(kind, identity.tenant, identity.user, self.ip)
            reply = await core.handle(self, frame)
        except HubError as err:
            core.metrics.errors.add(err.code)
            core.events.failed(self, kind, err.code, err.message)
            core.analytics.error(self.identity.tenant, err.code)
            self.send(protocol.answer(frame_id, err.to_content(), ok=False))
            if isinstance(err, RateLimited):
                self._count_refused(kind, err)
            elif isinstance(err, Forbidden):
                core.denied(self, kind, err)
            return
        except Exception:
            log.exception("handling a %s frame failed", frame["type"])
            core.events.failed(self, kind, "internal", "internal error")
            core.metrics.errors.add(HubError.code)  # what the alert on internal errors reads
            core.analytics.error(self.identity.tenant, HubError.code)
            self.send(protocol.answer(frame_id, HubError("internal error").to_content(),
                                      ok=False))
            return
        if kind in WATCHED:  # the few types the analytics count; the rest pay this lookup
            core.analytics.handled(self, frame, reply)
        if reply is not None:
            self.send(protocol.answer(frame_id, reply))

    def _count_refused(self, kind: str, err: HubError) -> None:
        """RTHUB_RATE_FLOOD ``rate_limited`` answers in ``FLOOD_WINDOW_S``: close 4429."""
        self._refused = _recent(self._refused, FLOOD_WINDOW_S)
        if len(self._refused) >= self.core.settings.rate_flood and self._closing is None:
            self.core.denied(self, kind, err)
            self.close(4429, f"rate limited: {len(self._refused)} refused requests in "
                             f"{FLOOD_WINDOW_S:g} s")

    def _count_malformed(self) -> None:
        self._malformed = _recent(self._malformed, MALFORMED_WINDOW_S)
        if len(self._malformed) >= MALFORMED_LIMIT:
            self.close(4400, f"{MALFORMED_LIMIT} malformed frames in a minute")

    # -- the socket's end -------------------------------------------------------------------
    def ended(self) -> None:
        """The sink says the socket is gone (either side closed it, or it broke)."""
        if self.state == GONE:
            return
        was_open = self.state == OPEN
        self.state = GONE
        if self._closing is None:
            self._closing = (1006, "gone")
        dropped = [self._held or deque(), *(self._lanes or {}).values()]
        for waiting in dropped:  # never started: no reply will come
            self._in_flight -= len(waiting)
            waiting.clear()
        self._held = None
        self.core.ended(self, was_open)

    # -- heartbeat and resume ---------------------------------------------------------------
    def beat(self, now: float) -> None:
        """A heartbeat (the gateway's one timer calls it): ping, or close a silent socket."""
        interval = self.core.settings.ws_heartbeat_interval
        self.next_beat = now + interval
        if now - self._last_heard > 2 * interval:
            self.close(4408, "heartbeat timeout")
            return
        if self.state != OPEN:  # the welcome comes first
            return
        if len(self._unanswered_pings) < 4:  # bounded; a pong then confirms less, never more
            self._unanswered_pings.append({t: p[1] for t, p in self.positions.items()})
        self.send({"type": "ping", "content": {"server_time_ms": int(time.time() * 1000)}})

    def resume_positions(self) -> dict[str, list[Any]]:
        """Per topic, [epoch, last seq the client confirmed]: a resume replays after it.

        Nothing else proves receipt (a write to a socket the client has already closed
        succeeds), so a resume may repeat up to one heartbeat of events; clients drop
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


def _recent(times: deque[float] | None, window_s: float) -> deque[float]:
    """``times`` (made on first use: most sockets never need it) with now added and what is
    older than ``window_s`` dropped."""
    now = time.monotonic()
    if times is None:
        times = deque()
    times.append(now)
    while now - times[0] > window_s:
        times.popleft()
    return times
