"""Encode-once frames and direct socket writes: the gateway's fan-out fast path.

A server frame is never masked (RFC 6455 5.1), so one event's frame bytes are the same for
every socket that speaks the same encoding: ``Outgoing`` builds them once per encoding and
``RawWriter`` writes them straight to the socket's transport, as ``websockets.broadcast``
does, instead of one ASGI ``send`` round trip per socket.

Reaching the transport relies on internals (Serve direct ingress hands the app uvicorn's own
``send``; uvicorn's WebSocket protocols keep ``transport``); that knowledge lives only here.
``RawWriter.find`` returns None wherever it does not hold (Serve's default proxy, another
server, a future layout), and the connection then uses the ASGI path. Frames written here are
uncompressed; that is valid even where permessage-deflate was negotiated, since RSV1 marks
each compressed message (RFC 7692 6).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from serve import protocol

_UVICORN_WS = "uvicorn.protocols.websockets."
_SEARCH_DEPTH = 8


def frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked, unfragmented server frame (FIN set; text or binary opcode)."""
    first = 0x82 if binary else 0x81
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", first, size) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


class Outgoing:
    """One server frame shared by many sockets, encoded at most once per encoding."""

    __slots__ = ("_frames", "_payloads", "envelope", "removes", "seq", "topic")

    def __init__(self, envelope: dict[str, Any], removes: str | None = None) -> None:
        self.envelope = envelope
        self.topic: str | None = envelope.get("topic")
        self.seq: int | None = envelope.get("seq")
        self.removes = removes  # a user who loses this topic once it is delivered (room.left)
        self._payloads: dict[str, bytes] = {}
        self._frames: dict[str, bytes] = {}

    def payload(self, encoding: str) -> bytes:
        data = self._payloads.get(encoding)
        if data is None:
            data = self._payloads[encoding] = protocol.encode_bytes(self.envelope, encoding)
        return data

    def wire(self, encoding: str) -> bytes:
        data = self._frames.get(encoding)
        if data is None:
            data = self._frames[encoding] = frame(self.payload(encoding),
                                                 encoding == protocol.MSGPACK)
        return data


def uvicorn_owner(send: Callable[..., Any] | None, module_prefix: str) -> Any:
    """The uvicorn protocol object an ASGI ``send`` ends in, or None (Serve's proxy path).

    Follows bound methods and closure cells (Starlette's and Serve's wrappers of ``send``
    are closures) at most a few levels deep.
    """
    seen: set[int] = set()
    stack = [(send, 0)] if send is not None else []
    while stack:
        fn, depth = stack.pop()
        if id(fn) in seen or depth > _SEARCH_DEPTH:
            continue
        seen.add(id(fn))
        owner = getattr(fn, "__self__", None)
        if owner is not None and type(owner).__module__.startswith(module_prefix):
            return owner
        func = getattr(fn, "__func__", fn)
        for cell in getattr(func, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value):
                stack.append((value, depth + 1))
    return None


def served_directly(send: Callable[..., Any] | None) -> bool:
    """Whether an HTTP request reached this replica's own server (direct ingress) rather
    than through Serve's proxy."""
    return uvicorn_owner(send, "uvicorn.protocols.http.") is not None


class Batcher:
    """Coalesces what each socket gets within one event-loop turn into one write.

    At low load a socket gets one frame per turn and nothing waits: the flush runs as soon
    as the current callback (one Redis read, say) returns. Under load several events arrive
    in one read, and each socket then costs one system call, and one wake-up of whatever
    relays its bytes (HAProxy), for all of them: the busier, the cheaper per frame.
    """

    def __init__(self) -> None:
        self._dirty: list[RawWriter] = []
        self._scheduled = False
        self.writes = 0  # system calls made, against frames written: the batching achieved

    def mark(self, writer: RawWriter) -> None:
        self._dirty.append(writer)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        self.writes += len(dirty)
        for writer in dirty:
            writer.flush()


class RawWriter:
    """Writes whole frames to one socket's transport, batched per loop turn by a ``Batcher``;
    calls ``on_full`` when more than ``limit`` bytes wait unsent."""

    __slots__ = ("_batcher", "_limit", "_on_full", "_pending", "_protocol", "_transport")

    def __init__(self, transport: Any, owner: Any, batcher: Batcher, limit: int,
                 on_full: Callable[[], None]) -> None:
        self._transport, self._protocol = transport, owner
        self._batcher, self._limit, self._on_full = batcher, limit, on_full
        self._pending: list[bytes] = []

    @classmethod
    def find(cls, ws: Any, batcher: Batcher, limit: int, on_full: Callable[[], None]
             ) -> RawWriter | None:
        """The writer under a Starlette WebSocket, or None where the transport is out of reach.

        Follows the ASGI ``send`` through bound methods and closure cells (Starlette's and
        Serve's wrappers of ``send`` are closures) to a uvicorn WebSocket protocol, at most a
        few levels deep.
        """
        owner = uvicorn_owner(getattr(ws, "_send", None), _UVICORN_WS)
        transport = getattr(owner, "transport", None)
        if owner is not None and all(hasattr(transport, name) for name in
                                     ("write", "is_closing", "get_write_buffer_size", "abort")):
            return cls(transport, owner, batcher, limit, on_full)
        return None

    def send(self, data: bytes) -> None:
        """Queue one frame for this loop turn's write."""
        pending = self._pending
        pending.append(data)
        if len(pending) == 1:
            self._batcher.mark(self)

    def flush(self) -> None:
        """Write what this turn queued, in one call (the close frame must come after it)."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._limit:
            self._on_full()

    @property
    def congested(self) -> bool:
        """More than ``limit`` bytes wait unsent: a close sent through ASGI would wait
        behind them for the client to read (uvicorn's ``send`` waits while writing is
        paused), so ``close`` writes the close frame itself."""
        return self._transport.get_write_buffer_size() > self._limit

    def close(self, code: int, reason: str, grace_s: float) -> None:
        """Queue a close frame after everything unsent, let the transport flush it, and
        drop the connection if the client has not read it all within ``grace_s``."""
        self.flush()
        payload = struct.pack("!H", code) + reason.encode()[:123]
        transport = self._transport
        if not transport.is_closing():
            transport.write(b"\x88" + bytes([len(payload)]) + payload)
            transport.close()
            asyncio.get_running_loop().call_later(grace_s, transport.abort)

    def abort(self) -> None:
        """Drop the connection at once (a client that will not read its close frame)."""
        self._transport.abort()
