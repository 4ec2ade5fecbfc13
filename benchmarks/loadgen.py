"""A minimal asyncio WebSocket client for load generation (RFC 6455, text frames only).

The ``websockets`` client costs more per frame than the servers measured, so the load
generator speaks the protocol itself: one HTTP upgrade, masked client frames, unmasked server
frames parsed straight off the stream. Every received text frame goes to ``on_text``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable


class Socket:
    """One client connection; ``frames`` collects texts while ``on_text`` is unset."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.on_text: Callable[[str], None] | None = None
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, host: str, port: int, path: str, headers: dict[str, str] | None = None
                   ) -> Socket:
        reader, writer = await asyncio.open_connection(host, port, limit=2**22)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await reader.readuntil(b"\r\n\r\n")
        if not response.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(response.split(b"\r\n", 1)[0].decode())
        return cls(reader, writer)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def recv(self, within_s: float = 30) -> str:
        return await asyncio.wait_for(self.frames.get(), within_s)

    async def _read(self) -> None:
        read = self.reader.readexactly
        try:
            while True:
                first, second = await read(2)
                opcode, size = first & 0x0F, second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await read(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", await read(8))
                payload = await read(size)
                if opcode == 0x1:
                    text = payload.decode()
                    if self.on_text is not None:
                        self.on_text(text)
                    else:
                        self.frames.put_nowait(text)
                elif opcode == 0x9:
                    self._frame(0xA, payload)
                elif opcode == 0x8:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if size >= 2 else None
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed.set()

    def close(self) -> None:
        self._task.cancel()
        self.writer.close()
