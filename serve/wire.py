"""Encode-once frames and batched socket writes: the gateway's fan-out path.

A server frame is never masked (RFC 6455 5.1), so one event's frame bytes are the same for
every socket that speaks the same encoding: ``Outgoing`` builds them once per encoding and
the socket writes them straight to its transport, as ``websockets.broadcast``
does. picows parses what clients send; what we send is whole frames written to the asyncio
transport under it, so that one ``bytes`` object serves every socket and what one socket
gets in one loop turn leaves in one system call. Frames written here are uncompressed.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Protocol

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


class Writer(Protocol):
    """A socket whose frames a ``Batcher`` writes: ``pending`` frames go out in one call."""

    pending: list[bytes]

    def flush(self) -> None: ...


class Batcher:
    """Coalesces what each socket gets within one event-loop turn into one write.

    At low load a socket gets one frame per turn and nothing waits: the flush runs as soon
    as the current callback (one Redis read, say) returns. Under load several events arrive
    in one read, and each socket then costs one system call for all of them: the busier,
    the cheaper per frame.
    """

    __slots__ = ("_dirty", "_scheduled", "writes")

    def __init__(self) -> None:
        self._dirty: list[Writer] = []
        self._scheduled = False
        self.writes = 0  # system calls made, against frames written: the batching achieved

    def queue(self, writer: Writer, data: bytes) -> None:
        """Queue one frame of ``writer``'s for this turn's write."""
        pending = writer.pending
        pending.append(data)
        if len(pending) == 1:
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
