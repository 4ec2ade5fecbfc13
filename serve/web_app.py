"""The web app at ``/app``: static HTML, CSS and ES modules of ``serve/app_page`` (the
JavaScript SDK's ``sdk/js/src`` under ``/app/sdk/``, through the ``app_page/sdk`` symlink,
which a built wheel holds as plain files), and ``/app/config.json``, which tells the page
where the WebSocket port is: under direct ingress it is a port of its own, not the page's.

The files hold no data and need no token; the page connects with the token it is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rthub.config import Settings

PAGE_DIR = Path(__file__).parent / "app_page"
MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png"}
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^[0-9A-Fa-f:.]{2,45}$")  # a name, IPv4 or IPv6
_COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "cache-control": "no-cache"}


def page_files(root: Path = PAGE_DIR) -> dict[str, bytes]:
    """Every servable file under ``root`` by its path from it (``sdk/index.js``), read once
    per replica; the symlinked SDK folder is followed."""
    found = {}
    for folder, _, names in os.walk(root, followlinks=True):  # rglob skips symlinked dirs
        for name in sorted(names):
            path = Path(folder, name)
            if path.suffix in MEDIA and path != root / "index.html":
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def ws_url(request: Request, settings: Settings) -> str:
    """The WebSocket URL as the page's browser reaches it: the host it loaded the page from,
    on the replicas' own port (direct ingress) or on this one under the page's prefix
    (Serve's proxy); ``RTHUB_PUBLIC_WS_URL`` when a balancer stands in front."""
    if settings.public_ws_url:
        return settings.public_ws_url
    scheme = "wss" if request.url.scheme == "https" else "ws"
    host = request.url.hostname or ""
    if not _HOST.match(host):  # a Host header that is no host: the listen address
        listen = settings.http_host or ""
        host = listen if listen not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    if settings.ingress == "direct":
        return f"{scheme}://{host}:{settings.ws_port}/ws"
    port = f":{request.url.port}" if request.url.port else ""
    return f"{scheme}://{host}{port}{request.scope.get('root_path', '')}/ws"


def content_policy(socket_url: str) -> str:
    """The page runs only its own scripts and styles and talks to this origin and the
    WebSocket port; no inline script, no other origin."""
    origin = socket_url.rsplit("/ws", 1)[0]
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src 'self' {origin}; img-src 'self' data:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")


def app_routes(settings: Settings) -> list[Route]:
    """``/app``, ``/app/config.json`` and the page's files."""
    index = (PAGE_DIR / "index.html").read_bytes()
    files = page_files()

    async def page(request: Request) -> Response:
        headers = {**_COMMON,
                   "content-security-policy": content_policy(ws_url(request, settings))}
        return Response(index, media_type=MEDIA[".html"], headers=headers)

    async def slash(request: Request) -> Response:
        return RedirectResponse("../app", status_code=308)  # relative: any route prefix

    async def config(request: Request) -> Response:
        return JSONResponse({"ws_url": ws_url(request, settings)}, headers=_COMMON)

    def asset(name: str) -> Callable[[Request], Awaitable[Response]]:
        body, media = files[name], MEDIA[Path(name).suffix]

        async def serve_file(request: Request) -> Response:
            return Response(body, media_type=media, headers=_COMMON)

        return serve_file

    return [Route("/app", page, methods=["GET"]), Route("/app/", slash, methods=["GET"]),
            Route("/app/config.json", config, methods=["GET"]),
            *(Route(f"/app/{name}", asset(name), methods=["GET"]) for name in files)]
