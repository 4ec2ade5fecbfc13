"""A connection to the hub that stays up: ``Hub`` speaks PROTOCOL.md v1 over one WebSocket at
a time and hides the drops between them.

It connects with a token (or a provider called on every (re)connect and again
``token_refresh_margin_s`` before the token's ``exp``, or at half a short token's life; the
fresh token goes to the open socket as ``session.refresh``, since the hub closes a socket
whose token expired), reconnects with exponential backoff and full jitter (never after 4401,
4403, 4409 or 4410: retrying cannot change them, and after a 4409 it would replace another of
the user's sockets; but a 4401 "token expired" with a provider reconnects with a fresh
token), resumes with the welcome's
``resume_token`` (the hub replays what the client missed, announced by ``subscribed``
frames) or, when the hub refuses the resume (4403 before any welcome), subscribes each
followed topic again ``since`` its last position. Repeats are dropped by
``seq``; a ``recovered: false`` calls the subscription's ``on_reload``. It answers ``ping``
with ``pong`` and takes a socket silent for two heartbeats for dead. Requests are pipelined
up to the welcome's ``max_in_flight``; those made while disconnected wait for the next
socket within their timeout, those in flight at a drop fail with ``disconnected``. Frames are
JSON, or msgpack with ``encoding="msgpack"`` (``client/codec.py``).

    hub = Hub("ws://127.0.0.1:8000/ws", token=provider)
    await hub.connect()
    room = await hub.request("room.create", {"name": "lobby"})
    hub.on("chat.message", lambda content, frame: ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import websockets

from client.backoff import backoff_delay
from client.clock import ClockEstimator, now_ms
from client.codec import JSON_CODEC, Codec, codec_for
from client.emitter import Emitter
from client.messages import check
from client.requests import HubError, Pending, Slots
from client.tokens import TokenProvider, TokenSource
from client.topics import Topics
from client.transport import FINAL_CLOSES, TOKEN_EXPIRED, Refused, open_socket

log = logging.getLogger(__name__)

REPLIES = frozenset({"ack", "error", "time.pong"})


class Subscription:
    """A topic followed through ``Hub.subscribe``; its position is the hub's."""

    def __init__(self, hub: Hub, topic: str, on_event: Callable[..., Any] | None,
                 on_reload: Callable[[dict[str, Any]], Any] | None) -> None:
        self.hub = hub
        self.topic = topic
        self.on_event = on_event
        self.on_reload = on_reload

    @property
    def epoch(self) -> str | None:
        position = self.hub.topics.positions.get(self.topic)
        return position.epoch if position else None

    @property
    def seq(self) -> int:
        position = self.hub.topics.positions.get(self.topic)
        return position.seq if position else 0

    async def unsubscribe(self) -> None:
        await self.hub.unsubscribe(self.topic)


class Hub:
    """One client's session with the hub, across as many sockets as it takes."""

    def __init__(self, url: str, token: str | TokenProvider, *,
                 token_refresh_margin_s: float = 60.0, request_timeout_s: float = 10.0,
                 reconnect: Mapping[str, float] | None = None, open_timeout_s: float = 20.0,
                 encoding: str = "json", logger: logging.Logger | None = None) -> None:
        self.url = url
        self.encoding = encoding
        self._codec = codec_for(encoding)  # a wrong name or a missing msgpack fails here
        self.token_refresh_margin_s = token_refresh_margin_s
        self.request_timeout_s = request_timeout_s
        self.reconnect = {"initial_s": 0.2, "max_s": 10.0, **(reconnect or {})}
        self.open_timeout_s = open_timeout_s
        self.log = logger or log
        self.state = "idle"
        self.session: dict[str, Any] = {}
        self.clock = ClockEstimator()
        self.topics = Topics()
        self._tokens = TokenSource(token, token_refresh_margin_s, self._present)
        self._events = Emitter()
        self._subs: dict[str, Subscription] = {}
        self._pending: dict[int, Pending] = {}
        self._slots = Slots(64)
        self._ids = itertools.count(1)
        self._ws: Any = None
        self._wire: Codec = JSON_CODEC  # what the current socket speaks
        self._open = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._first: asyncio.Future | None = None
        self._resume_token: str | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- public API -----------------------------------------------------------------------
    async def connect(self) -> dict[str, Any]:
        """Open the session; returns the welcome's content. Raises ``HubError`` when the
        first connection fails (a refused token, an unreachable hub): nothing is retried."""
        if self._runner is not None:
            raise RuntimeError("connect() once per Hub")
        self._first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run())
        return await self._first

    async def close(self) -> None:
        """Close the socket and stop reconnecting; waiting requests fail with ``closed``."""
        self._set_state("closed")
        for task in (self._runner, *self._tasks):
            if task is not None:
                task.cancel()
        closed = HubError("closed", "the hub was closed")
        if self._first is not None and not self._first.done():
            self._first.set_exception(closed)
        if self._ws is not None:
            await self._ws.close()
        self._finish(closed)

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        """Listen: ``state``, ``welcome``, ``resumed``, ``disconnect``, ``error``,
        ``refreshed`` (``{exp}``: the socket runs on a renewed token), or a server event
        type (``fn(content, frame)``). Returns the function that stops listening."""
        return self._events.on(name, fn)

    async def request(self, type: str, content: dict[str, Any] | None = None,
                      timeout_s: float | None = None) -> dict[str, Any]:
        """Send a request and return its reply's content; ``HubError`` on an ``error`` reply,
        ``timeout`` after ``timeout_s``, ``disconnected`` when the socket dropped first."""
        return await self._request(type, content or {}, timeout_s, self._followed)

    async def subscribe(self, topic: str, on_event: Callable[..., Any] | None = None,
                        on_reload: Callable[[dict[str, Any]], Any] | None = None
                        ) -> Subscription:
        """Follow a topic: ``on_event(content, frame)`` for each new event (repeats dropped),
        ``on_reload({topic, epoch, seq})`` when the hub could not replay what was missed."""
        sub = self._subs[topic] = Subscription(self, topic, on_event, on_reload)
        try:
            await self.request("subscribe", {"topic": topic})
        except BaseException:
            self._subs.pop(topic, None)
            raise
        return sub

    async def unsubscribe(self, topic: str) -> None:
        self._subs.pop(topic, None)
        self.topics.forget(topic)
        await self.request("unsubscribe", {"topic": topic})

    def position(self, topic: str) -> dict[str, Any] | None:
        """Where the client is in ``topic``'s stream (``{epoch, seq}``), or None."""
        known = self.topics.positions.get(topic)
        return {"epoch": known.epoch, "seq": known.seq} if known else None

    async def sync_clock(self, samples: int = 8) -> dict[str, float]:
        """A burst of ``time.ping`` exchanges into ``clock``; its offset and error bound."""
        for _ in range(samples):
            t0 = now_ms()
            pong = await self.request("time.ping", {"t0": t0})
            self.clock.add(t0, pong["t1"], pong["t2"], now_ms())
        return {"offset_ms": self.clock.offset_ms, "error_bound_ms": self.clock.error_bound_ms}

    # -- requests -------------------------------------------------------------------------
    async def _request(self, type: str, content: dict[str, Any], timeout_s: float | None,
                       on_reply: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
                try:
                    return await self._send_and_wait(type, content, on_reply)
                finally:
                    self._slots.release()
        except TimeoutError:
            raise HubError("timeout", f"no reply to {type} within {timeout} s") from None

    async def _send_and_wait(self, type: str, content: dict[str, Any],
                             on_reply: Callable[[dict[str, Any]], None] | None) -> Any:
        while True:
            await self._open.wait()
            ws, wire = self._ws, self._wire
            if self.state == "closed" or ws is None:
                raise HubError("closed", "the hub is closed")
            frame_id = next(self._ids)
            pending = self._pending[frame_id] = Pending(
                asyncio.get_running_loop().create_future(), ws, on_reply)
            try:
                await ws.send(wire.encode({"type": type, "id": frame_id, "content": content}))
            except websockets.ConnectionClosed:
                self._pending.pop(frame_id, None)
                if self._ws is ws:  # dead before the reader saw it: wait for the next one
                    self._open.clear()
                continue  # it never went out
            try:
                return await pending.future
            finally:
                self._pending.pop(frame_id, None)

    def _followed(self, ack: dict[str, Any]) -> None:
        self.topics.followed(ack)  # room.join, playlist.open...: the ack names the topic

    async def _present(self, token: str) -> None:
        """Hand a renewed token to the open socket (``session.refresh``), which the hub
        would otherwise close at the old token's ``exp``; with no socket open, the next
        reconnect presents it. ``HubError`` (the hub's refusal, a timeout) is retried by the
        token source."""
        if self._ws is None or self.state != "open":
            return
        ack = await self._request("session.refresh", {"token": token}, None, None)
        self.log.info("the socket runs on a renewed token (exp %s)", ack.get("exp"))
        self._events.emit("refreshed", ack)

    # -- the connection loop --------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while self.state != "closed":
            first = self._first is not None and not self._first.done()
            self._set_state("connecting" if first else "reconnecting")
            try:
                token = await self._tokens.fresh()
            except Exception as err:  # the application's provider: anything may go wrong
                self.log.warning("the token provider failed: %r", err)
                if first:
                    self._stop(HubError("unauthorized", f"the token provider failed: {err!r}"))
                    return
                outcome = "failed"
            else:
                outcome = await self._attempt(token, first)
            if outcome == "stop" or self.state == "closed":
                return
            if outcome == "afresh":
                continue  # the resume was refused: a fresh session at once
            if outcome == "served":
                attempt = 0  # a drop: the first, shortest (still jittered) wait
            await asyncio.sleep(backoff_delay(attempt, **self.reconnect))
            attempt += 1

    async def _attempt(self, token: str, first: bool) -> str:
        """One connection, served until it ends: ``served`` (it had a session),
        ``afresh`` (its resume was refused), ``failed`` (it did not open), ``stop``."""
        try:
            ws, welcome, wire = await open_socket(self.url, token, self._resume_token,
                                                  self.open_timeout_s, self._codec)
        except Refused as refused:
            if refused.resume_refused:
                self.log.info("resume refused (%s): a fresh session", refused.reason)
                self._resume_token = None
                return "afresh"  # the topics come back `since` their positions
            self._stop(HubError("forbidden" if refused.code in (403, 4403)
                                else "unauthorized", refused.reason))
            return "stop"
        except (OSError, TimeoutError, ValueError, websockets.WebSocketException) as err:
            if first:
                self._stop(HubError("unavailable", f"cannot connect: {err}"))
                return "stop"
            self.log.info("reconnect failed (%s)", err)
            return "failed"
        code, reason = await self._serve(ws, welcome, wire)
        self._events.emit("disconnect", {"code": code, "reason": reason})
        if (code, reason) == TOKEN_EXPIRED and self._tokens.renewable:
            self.log.warning("the socket closed on its expired token: reconnecting with a "
                             "fresh one")
        elif code in FINAL_CLOSES:
            self._stop(HubError("closed", f"the hub closed the session: {code} {reason}"))
            return "stop"
        self._set_state("reconnecting")
        return "served"

    async def _serve(self, ws: Any, welcome: dict[str, Any], wire: Codec
                     ) -> tuple[int | None, str]:
        """Run one socket from its welcome to its end; returns its close (code, reason)."""
        content = welcome["content"]
        had_session = bool(self.session)
        self.session = content
        self._resume_token = content.get("resume_token")
        self._slots.resize(int(content.get("max_in_flight") or 64))
        self._ws, self._wire = ws, wire
        self._open.set()
        self._set_state("open")
        resumed = bool(content.get("resumed"))
        self._events.emit("resumed" if resumed else "welcome", content)
        if self._first is not None and not self._first.done():
            self._first.set_result(content)
        if had_session and not resumed and self.topics.positions:
            self._spawn(self._resubscribe())
        try:
            return await self._read(ws, wire, float(content.get("heartbeat_s") or 30))
        finally:
            self._open.clear()
            self._ws = None
            for pending in [p for p in self._pending.values() if p.socket is ws]:
                pending.fail(HubError("disconnected", "the socket dropped before the reply"))

    async def _read(self, ws: Any, wire: Codec, heartbeat_s: float
                    ) -> tuple[int | None, str]:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), 2 * heartbeat_s)
            except TimeoutError:
                self.log.warning("no frame for %.0f s (2 heartbeats): the socket is dead",
                                 2 * heartbeat_s)
                ws.transport.abort()
                return None, "heartbeat timeout"
            except websockets.ConnectionClosed as closed:
                if closed.rcvd is None:
                    return None, "dropped without a close frame"
                return closed.rcvd.code, closed.rcvd.reason
            try:
                frame = wire.decode(raw)
            except (ValueError, TypeError) as err:  # msgpack's errors derive from these
                self.log.warning("a frame that is not %s (%s): %.80r", wire.name, err, raw)
                continue
            if isinstance(frame, dict):
                self.log.debug("frame %.300r", frame)
                await self._dispatch(ws, wire, frame)

    async def _dispatch(self, ws: Any, wire: Codec, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        content = frame.get("content") or {}
        pending = self._pending.get(frame.get("ref")) if kind in REPLIES else None
        if pending is not None:
            pending.settle(frame)
        elif kind == "ping":
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(wire.encode({"type": "pong"}))
        elif kind == "subscribed":
            self._restored(content, frame)
        elif kind == "error":
            self._events.emit("error", HubError.of(content))
        elif kind != "ack" and self.topics.accept(frame):
            check(kind, content, self.log)
            sub = self._subs.get(frame.get("topic", ""))
            if sub is not None and sub.on_event is not None:
                _call(sub.on_event, content, frame)
            self._events.emit(kind, content, frame)

    def _restored(self, content: dict[str, Any], frame: dict[str, Any] | None = None) -> None:
        """A topic back after a reconnect (a ``subscribed`` frame, or the ack of a
        ``subscribe since``); ``on_reload`` when what was missed is lost. Listeners of
        ``subscribed`` hear both."""
        if not self.topics.restored(content):
            sub = self._subs.get(content["topic"])
            if sub is not None and sub.on_reload is not None:
                _call(sub.on_reload, {k: content[k] for k in ("topic", "epoch", "seq")})
        self._events.emit("subscribed", content, frame or {"type": "subscribed",
                                                           "topic": content["topic"],
                                                           "content": content})

    async def _resubscribe(self) -> None:
        """A fresh session (the resume was refused): follow every topic again from where
        the client was."""
        for topic, since in self.topics.since().items():
            try:
                await self._request("subscribe", {"topic": topic, "since": since}, None,
                                    self._restored)
            except HubError as err:
                self.log.warning("could not follow %s again: %s", topic, err)
                self._events.emit("error", err)

    # -- helpers --------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if self.state != state and self.state != "closed":
            self.state = state
            self._events.emit("state", state)

    def _stop(self, error: HubError) -> None:
        self._set_state("closed")
        if self._first is not None and not self._first.done():
            self._first.set_exception(error)
        self._events.emit("error", error)
        self._finish(error)

    def _finish(self, error: HubError) -> None:
        self._tokens.stop()
        for pending in list(self._pending.values()):
            pending.fail(error)
        self._open.set()  # requests waiting for a socket wake up and see `closed`

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("a subscription callback failed")
