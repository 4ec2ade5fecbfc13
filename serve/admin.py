"""The admin analytics: ``GET /v1/admin/analytics`` (JSON, the ``admin`` scope, the token's
tenant) and the page at ``/admin`` that draws it (static files of ``serve/admin_page``; the
page holds no data of its own and asks the API with the token it is given)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rthub.errors import BadRequest, Forbidden, Unavailable
from serve import analytics_store
from serve.auth import Identity
from serve.metrics import LATENCY_BOUNDS
from storage import analytics as stored

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

ADMIN_SCOPE = "admin"
PAGE_DIR = Path(__file__).parent / "admin_page"
PAGE_FILES = {"/admin": ("index.html", "text/html; charset=utf-8"),
              "/admin/admin.js": ("admin.js", "text/javascript; charset=utf-8"),
              "/admin/admin.css": ("admin.css", "text/css; charset=utf-8")}
# the page runs only its own script and style, and talks only to this origin
PAGE_HEADERS = {"content-security-policy": "default-src 'none'; script-src 'self'; "
                "style-src 'self'; connect-src 'self'; img-src 'self' data:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                "cache-control": "no-cache"}


def minutes_param(raw: str | None) -> int:
    """``?minutes=``: 1 to 60 (the buckets expire after an hour); 60 when absent."""
    most = analytics_store.MAX_MINUTES
    if raw is None:
        return most
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 2 and 1 <= int(raw) <= most):
        raise BadRequest(f"'minutes' must be an integer from 1 to {most}")
    return int(raw)


async def analytics(core: GatewayCore, who: Identity, minutes_raw: str | None
                    ) -> dict[str, Any]:
    """The tenant's last ``minutes`` minutes: what the replicas flushed to Redis, with the
    notification outcomes and skipped tracks PostgreSQL holds."""
    if ADMIN_SCOPE not in who.scopes:
        raise Forbidden("the analytics need the 'admin' scope")
    minutes = minutes_param(minutes_raw)
    try:
        live = await analytics_store.read(core.redis, who.tenant, minutes, LATENCY_BOUNDS)
    except (RedisError, OSError) as exc:  # was a 500
        raise Unavailable(f"the analytics store (Redis) did not answer; retry "
                          f"({type(exc).__name__})") from None
    pool = await core.db()
    live["top"]["skipped_tracks"] = await stored.skipped_tracks(
        pool, who.tenant, minutes, analytics_store.TOP_N)
    return {"tenant": who.tenant, "minutes": minutes,
            "flush_s": core.settings.analytics_flush_s,
            "latency_scope": "hub", **live,
            "notifications": await stored.notification_outcomes(pool, who.tenant, minutes)}


def _static(name: str, media: str) -> Callable[[Request], Awaitable[Response]]:
    body = (PAGE_DIR / name).read_bytes()

    async def serve_file(request: Request) -> Response:
        return Response(body, media_type=media, headers=PAGE_HEADERS)

    return serve_file


def page_routes() -> list[Route]:
    """The page's static files (no token: they hold no data; read once per replica)."""
    return [Route(path, _static(name, media), methods=["GET"])
            for path, (name, media) in PAGE_FILES.items()]
