"""A protocol client for tests: real WebSocket connections, frames awaited by predicate."""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import urllib.request
import zlib
from typing import Any

import msgpack
import websockets

_ids = itertools.count(1)


async def metrics_text(operator: str) -> str:
    """The Prometheus text of the gateway replica whose operator port is at ``operator``."""

    def fetch() -> str:
        with urllib.request.urlopen(f"{operator}/metrics", timeout=10) as response:
            return response.read().decode()

    return await asyncio.to_thread(fetch)


async def scrape(operator: str) -> dict[str, float]:
    """The gateway's metrics as {name: value} (unlabelled series only)."""
    values = {}
    for line in (await metrics_text(operator)).splitlines():
        name, _, value = line.partition(" ")
        if not line.startswith("#") and "{" not in name:
            values[name] = float(value)
    return values


class Client:
    """One socket speaking PROTOCOL.md v1 (JSON, or msgpack with ``binary=True``)."""

    def __init__(self, ws: websockets.ClientConnection, binary: bool = False) -> None:
        self.ws = ws
        self.binary = binary
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, token: str | None = None, binary: bool = False,
                      query: str = "", headers: dict[str, str] | None = None,
                      **kwargs: Any) -> Client:
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        subprotocols = ["rthub.msgpack.v1"] if binary else None
        ws = await websockets.connect(url + query, additional_headers=headers,
                                      subprotocols=subprotocols, open_timeout=20, **kwargs)
        client = cls(ws, binary)
        client.welcome = await client.expect("session.welcome")
        return client

    async def send(self, frame_type: str, content: dict[str, Any] | None = None,
                   **fields: Any) -> Any:
        """Send a frame with a fresh id; return the id."""
        frame = {"type": frame_type, "id": next(_ids), "content": content or {}, **fields}
        await self.send_raw(msgpack.packb(frame) if self.binary else json.dumps(frame))
        return frame["id"]

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, within: float = 10) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), within)
        return msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)

    async def expect(self, frame_type: str, within: float = 10,
                     has: dict[str, Any] | None = None, **match: Any) -> dict[str, Any]:
        """The first frame (held or new) of ``frame_type`` whose fields equal ``match`` and
        whose content has the values of ``has``; the frames before it stay in ``inbox``."""

        def fits(frame: dict[str, Any]) -> bool:
            return (frame.get("type") == frame_type
                    and all(frame.get(k) == v for k, v in match.items())
                    and all(frame["content"].get(k) == v for k, v in (has or {}).items()))

        for frame in self.inbox:
            if fits(frame):
                self.inbox.remove(frame)
                return frame
        async with asyncio.timeout(within):
            while True:
                frame = await self.recv(within)
                if fits(frame):
                    return frame
                self.inbox.append(frame)

    async def ask(self, frame_type: str, content: dict[str, Any] | None = None,
                  within: float = 15) -> dict[str, Any]:
        """Send and return the ``ack`` content; raise AssertionError on an ``error``."""
        frame_id = await self.send(frame_type, content)
        async with asyncio.timeout(within):
            while True:
                frame = await self.recv(within)
                if frame.get("ref") == frame_id and frame["type"] in ("ack", "error"):
                    if frame["type"] == "error":
                        raise AssertionError(f"{frame_type} failed: {frame['content']}")
                    return frame["content"]
                self.inbox.append(frame)

    async def error_for(self, frame_type: str, content: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
        """Send and return the ``error`` content (fails if the reply is an ack)."""
        frame_id = await self.send(frame_type, content)
        reply = await self.expect_ref(frame_id)
        assert reply["type"] == "error", reply
        return reply["content"]

    async def expect_ref(self, frame_id: Any) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("ref") == frame_id:
                return frame
            self.inbox.append(frame)

    async def closed_with(self, within: float = 15) -> int | None:
        """Read until the server closes; return its close code."""
        async with asyncio.timeout(within):
            try:
                while True:
                    await self.ws.recv()
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


def png() -> bytes:
    """A real 1x1 PNG (an allowed attachment type)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))
