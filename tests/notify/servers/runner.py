"""What the local provider servers share: each serves on 127.0.0.1, a free port, for one
``async with``, and is ready when entering returns.

``HypercornServer`` (Web Push; ``LocalServer``, which also records answers, for FCM and
APNs) answers each ``Request`` with the ``Reply`` of its ``handle``, served by hypercorn on a
socket bound and listening before hypercorn starts; entering waits for the ASGI lifespan
start-up. ``AiohttpServer`` (Twilio, Pusher) serves aiohttp routes; entering returns once the
socket listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from hypercorn.asyncio import serve
from hypercorn.config import Config

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]  # names lower-cased, in the order sent
    body: bytes
    http_version: str

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, content: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, json.dumps(content).encode(),
                   [("content-type", "application/json; charset=UTF-8"), *(headers or [])])


class HypercornServer:
    """``handle`` served by hypercorn; the instance is the ASGI application.

    Close clients before stopping a TLS server: asyncio waits up to 30 s for the close_notify
    of a TLS client still holding an idle connection."""

    tls: tuple[str, str] | None = None  # certificate and key paths: serve HTTPS (h2 by ALPN)
    graceful_timeout = 2.0  # seconds stop() gives requests in flight

    def __init__(self) -> None:
        self.port = 0
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._release = asyncio.Event()  # lets go of requests held by ``hang``

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def answered(self, request: Request, reply: Reply) -> None:
        """Called with every reply just before it is sent."""

    async def hang(self) -> Reply:
        """Never answer (until the server stops): the client's timeout must fire."""
        await self._release.wait()
        return Reply(503)

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # connections queue from here on, before hypercorn accepts
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) it from here
        config.accesslog = None
        config.errorlog = log
        config.graceful_timeout = self.graceful_timeout
        if self.tls:
            config.certfile, config.keyfile = self.tls
        self._task = asyncio.create_task(
            serve(self, config, shutdown_trigger=self._stopping.wait, mode="asgi"))
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            await self._task  # raises what stopped it
            raise RuntimeError("hypercorn ended before it started")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop serving: from now on connecting to the port is refused."""
        if self._task is None:
            return
        self._release.set()
        self._stopping.set()
        task, self._task = self._task, None
        await task

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                    self._started.set()
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            event = await receive()
            body += event.get("body", b"")
            more = event.get("more_body", False)
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        request = Request(scope["method"], scope["path"], headers, body, scope["http_version"])
        reply = await self.handle(request)
        self.answered(request, reply)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})


class LocalServer(HypercornServer):
    """A ``HypercornServer`` that keeps the path and status of every answer (FCM, APNs)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, int]] = []  # (path, status) of every answer, in order

    def answered(self, request: Request, reply: Reply) -> None:
        self.answers.append((request.path, reply.status))


class AiohttpServer:
    """``routes`` served by aiohttp; ``url`` is where, once entered."""

    def __init__(self, *routes: web.RouteDef) -> None:
        self.url = ""
        app = web.Application()
        app.add_routes(routes)
        self._runner = web.AppRunner(app, access_log=None)

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()  # returns once it listens
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
