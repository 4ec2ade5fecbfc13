"""WebSockets through Serve's HTTP proxy (RTHUB_INGRESS=proxy): the compatibility mode.

Every frame crosses a Ray call between Serve's proxy and the replica, so this path is far
slower than the replica's own port (``serve.sockets``); it exists for setups that can only
expose Serve's HTTP port. The same ``Connection`` runs on it: the token is checked before
the upgrade (refused sockets are closed before ``accept``, which Serve answers with 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from rthub.errors import HubError, Unauthorized
from serve import protocol
from serve.connection import Connection
from serve.wire import Outgoing

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

CLOSE_WAIT_S = 5.0


class AsgiSocket:
    """A connection's sink over ASGI ``send``: a bounded byte queue and one writer task."""

    def __init__(self, ws: WebSocket, encoding: str, limit: int) -> None:
        self.ws, self.encoding, self.limit = ws, encoding, limit
        self.conn: Connection | None = None
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._readable = asyncio.Event()
        self._readable.set()
        self._closing: tuple[int, str] | None = None

    def write(self, out: Outgoing) -> None:
        data = out.payload(self.encoding)
        self._queued_bytes += len(data)
        if self._queued_bytes > self.limit:
            self.conn.too_slow()
            return
        self._queue.append(data)
        self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    async def write_all(self) -> None:
        """One ``send`` per frame, in order; then the close frame, if we are closing."""
        queue, binary = self._queue, self.encoding == protocol.MSGPACK
        while True:
            while not queue:
                if self._closing is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.ws.close(*self._closing), CLOSE_WAIT_S)
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            frame = queue.popleft()
            self._queued_bytes -= len(frame)
            try:
                if binary:
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame.decode())
            except (WebSocketDisconnect, RuntimeError, OSError):
                return

    async def read_all(self) -> None:
        conn = self.conn
        while True:
            await self._readable.wait()
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                conn.peer_closed(message.get("code"))
                return
            text = message.get("text")
            conn.received(text if text is not None else message.get("bytes") or b"")


async def serve_asgi(core: GatewayCore, ws: WebSocket, path_user: str | None) -> None:
    """Accept (or refuse) one socket that came through Serve's proxy; run it to the end."""
    if core.draining:
        await ws.close(1012)
        return
    ip = core.network.client_ip(ws.client.host if ws.client else "",
                                ws.headers.get("x-forwarded-for"))
    try:
        identity = core.identify(ws.headers.get("authorization", ""),
                                 ws.query_params.get("token"), path_user, ip)
    except HubError as err:
        core.metrics.refused.labels(err.code).inc()
        await ws.close(4401 if isinstance(err, Unauthorized) else 4403, err.message)
        return
    subprotocol = protocol.choose_subprotocol(ws.headers.get("sec-websocket-protocol", ""))
    sink = AsgiSocket(ws, subprotocol or protocol.JSON, core.settings.send_buffer_bytes)
    conn = Connection(core, sink, identity, sink.encoding, f"c-{secrets.token_hex(8)}",
                      ip, ws.query_params.get("resume"))
    sink.conn = conn
    await ws.accept(subprotocol=subprotocol)
    core.accept(conn)
    tasks = [asyncio.create_task(sink.write_all()), asyncio.create_task(sink.read_all())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        conn.ended()
