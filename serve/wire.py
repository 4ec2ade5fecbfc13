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

import logging
import struct
from collections.abc import Callable
from typing import Any

from serve import protocol

log = logging.getLogger(__name__)

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

    __slots__ = ("_frames", "_payloads", "envelope", "seq", "topic")

    def __init__(self, envelope: dict[str, Any]) -> None:
        self.envelope = envelope
        self.topic: str | None = envelope.get("topic")
        self.seq: int | None = envelope.get("seq")
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


class RawWriter:
    """Writes whole frames to one socket's transport; knows how much is still unsent."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: Any, owner: Any) -> None:
        self._transport, self._protocol = transport, owner

    @classmethod
    def find(cls, ws: Any) -> RawWriter | None:
        """The writer under a Starlette WebSocket, or None where the transport is out of reach.

        Follows the ASGI ``send`` through bound methods and closure cells (Starlette's and
        Serve's wrappers of ``send`` are closures) to a uvicorn WebSocket protocol, at most a
        few levels deep.
        """
        send: Callable[..., Any] | None = getattr(ws, "_send", None)
        if send is None:
            return None
        seen: set[int] = set()
        stack = [(send, 0)]
        while stack:
            fn, depth = stack.pop()
            if id(fn) in seen or depth > _SEARCH_DEPTH:
                continue
            seen.add(id(fn))
            owner = getattr(fn, "__self__", None)
            if owner is not None and type(owner).__module__.startswith(_UVICORN_WS):
                transport = getattr(owner, "transport", None)
                if all(hasattr(transport, name) for name in
                       ("write", "is_closing", "get_write_buffer_size")):
                    return cls(transport, owner)
            func = getattr(fn, "__func__", fn)
            for cell in getattr(func, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if callable(value):
                    stack.append((value, depth + 1))
        return None

    @property
    def open(self) -> bool:
        """False once either side started closing: nothing more may be written."""
        return not (self._transport.is_closing() or getattr(self._protocol, "close_sent", False))

    def abort(self) -> None:
        """Drop the connection at once (a client that will not read its close frame)."""
        self._transport.abort()

    def write(self, data: bytes) -> int:
        """Write one frame now; returns the bytes the transport still holds unsent."""
        transport = self._transport
        if transport.is_closing():
            return 0
        transport.write(data)
        return transport.get_write_buffer_size()
