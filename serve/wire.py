"""Encode-once frames and batched socket writes: the gateway's fan-out path.

A server frame is never masked (RFC 6455 5.1), so one event's frame bytes are the same for
every socket that speaks the same encoding: ``Outgoing`` builds them once per encoding and
``RawWriter`` writes them straight to each socket's transport, as ``websockets.broadcast``
does. picows parses what clients send; what we send is whole frames written to the asyncio
transport under it, so that one ``bytes`` object serves every socket and what one socket
gets in one loop turn leaves in one system call. Frames written here are uncompressed.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from serve import protocol


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


class Batcher:
    """Coalesces what each socket gets within one event-loop turn into one write.

    At low load a socket gets one frame per turn and nothing waits: the flush runs as soon
    as the current callback (one Redis read, say) returns. Under load several events arrive
    in one read, and each socket then costs one system call for all of them: the busier,
    the cheaper per frame.
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

    __slots__ = ("_batcher", "_limit", "_on_full", "_pending", "_transport")

    def __init__(self, transport: Any, batcher: Batcher, limit: int,
                 on_full: Callable[[], None]) -> None:
        self._transport = transport
        self._batcher, self._limit, self._on_full = batcher, limit, on_full
        self._pending: list[bytes] = []

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
