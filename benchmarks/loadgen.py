"""A minimal asyncio WebSocket client for load generation (RFC 6455, text frames only).

The ``websockets`` client costs more per frame than the servers measured, so the load
generator speaks the protocol itself as an ``asyncio.Protocol``: one HTTP upgrade, masked
client frames, and unmasked server frames parsed straight out of ``data_received`` with no
await per frame. Every received text frame goes to ``on_text``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import struct
from collections.abc import Callable

_MASK = os.urandom(4)  # a load generator need not vary the mask; the server unmasks anyway


class Socket(asyncio.Protocol):
    """One client connection; ``frames`` collects texts while ``on_text`` is unset."""

    def __init__(self) -> None:
        self.on_text: Callable[[str], None] | None = None
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                   tls: ssl.SSLContext | None = None) -> Socket:
        loop = asyncio.get_running_loop()
        _, sock = await loop.create_connection(cls, host, port, ssl=tls)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            await asyncio.wait_for(sock._upgraded, 30)
        except BaseException:
            sock.transport.close()
            raise
        return sock

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._upgraded.done():
            self._upgraded.set_exception(ConnectionError("closed before the upgrade"))
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[:end]).split(b"\r\n", 1)[0].decode()
            del buffer[:end + 4]
            if not status.startswith("HTTP/1.1 101"):
                self._upgraded.set_exception(ConnectionError(status))
                self.transport.close()
                return
            self._upgraded.set_result(None)
        start, size_all = 0, len(buffer)
        while size_all - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            size, head = second & 0x7F, 2
            if size == 126:
                if size_all - start < 4:
                    break
                size, head = struct.unpack_from("!H", buffer, start + 2)[0], 4
            elif size == 127:
                if size_all - start < 10:
                    break
                size, head = struct.unpack_from("!Q", buffer, start + 2)[0], 10
            end = start + head + size
            if end > size_all:
                break
            self._frame_received(first & 0x0F, bytes(buffer[start + head:end]))
            start = end
        if start:
            del buffer[:start]

    def _frame_received(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            text = payload.decode()
            if self.on_text is not None:
                self.on_text(text)
            else:
                self.frames.put_nowait(text)
        elif opcode == 0x9:
            self._frame(0xA, payload)
        elif opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.transport.close()

    # -- sending ---------------------------------------------------------------------------
    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        key = int.from_bytes(_MASK * (size // 4 + 1), "big") >> (8 * (4 - size % 4))
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big") if size else b""
        self.transport.write(header + _MASK + masked)

    async def recv(self, within_s: float = 30) -> str:
        return await asyncio.wait_for(self.frames.get(), within_s)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
