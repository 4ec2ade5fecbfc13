"""Requests a socket has sent and not had answered: their futures, and the bound on how many
may be in flight at once (``max_in_flight`` from ``session.welcome``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class HubError(Exception):
    """A request that failed: the hub's ``error`` reply (``code`` as PROTOCOL.md lists them:
    ``bad_request``, ``forbidden``, ``rate_limited`` with ``retry_after_ms``...), or the
    client's own ``timeout`` (no reply in time), ``disconnected`` (the socket dropped before
    the reply: the outcome is unknown, resend with the same idempotency key) and ``closed``
    (the hub was closed, or refused to let this client connect)."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    @classmethod
    def of(cls, content: dict[str, Any]) -> HubError:
        """The error of an ``error`` frame's content."""
        retry = content.get("retry_after_ms")
        return cls(str(content.get("code", "internal")), str(content.get("message", "")),
                   retry if isinstance(retry, int) else None)


class Slots:
    """At most ``limit`` requests in flight; the rest wait their turn, first come first
    served. ``limit`` may change (each welcome announces it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # granted just as the caller gave up: pass it on
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self.used < self.limit and self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                self.used += 1
                turn.set_result(None)


@dataclass(slots=True)
class Pending:
    """One request sent on one socket, waiting for the frame whose ``ref`` is its id."""

    future: asyncio.Future
    socket: object  # the connection it went out on: a drop fails only its own
    on_reply: Callable[[dict[str, Any]], None] | None = field(default=None)

    def settle(self, frame: dict[str, Any]) -> None:
        """The reply: ``error`` fails the request, anything else (``ack``, ``time.pong``)
        resolves it with its content."""
        if self.future.done():
            return
        content = frame.get("content") or {}
        if frame.get("type") == "error":
            self.future.set_exception(HubError.of(content))
            return
        if self.on_reply is not None:
            self.on_reply(content)
        self.future.set_result(content)

    def fail(self, error: HubError) -> None:
        if not self.future.done():
            self.future.set_exception(error)
