"""The ingress: a Ray Serve deployment serving ``/ws``, ``/ws/{user_id}``, health and metrics.

Sharp edges handled here (DESIGN.md): each socket holds one ``max_ongoing_requests`` slot, so
it is set to RTHUB_MAX_SOCKETS_PER_REPLICA; ``request_timeout_s`` is never set (it would cut
long-lived sockets); on graceful shutdown Serve first waits for in-flight requests (sockets)
up to ``graceful_shutdown_timeout_s`` and then calls ``__del__``, which closes every socket
with 1012 so clients resume on another replica.

The ASGI app is a bare Starlette ``Router`` built per replica (Serve's
``__serve_build_asgi_app__``), not FastAPI: every open socket keeps its request's objects
alive, and FastAPI's per-request machinery (dependency solving, an exit stack) cost ~7 KB
per idle socket for nothing a WebSocket route uses.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve as rayserve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from rthub.config import Settings
from serve.gateway import GatewayCore
from serve.http_api import HttpApi
from serve.wire import served_directly

GRACEFUL_SHUTDOWN_S = 5.0
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@rayserve.ingress()
class Gateway:
    """One ingress replica."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.core = GatewayCore(settings)

    def __serve_build_asgi_app__(self) -> Router:
        return Router(routes=[
            WebSocketRoute("/ws", self.ws),
            WebSocketRoute("/ws/{user_id}", self.ws),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
            *HttpApi(self.core).routes(),
        ])

    async def ws(self, websocket: WebSocket) -> None:
        await self.core.serve(websocket, websocket.path_params.get("user_id"))

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "gateway": self.core.gateway_id})

    async def readyz(self, request: Request) -> JSONResponse:
        try:
            await self.core.redis.ping()
            ready = not self.core.draining
        except Exception as exc:
            return JSONResponse({"ready": False, "reason": f"redis: {exc}"}, status_code=503)
        # ``direct``: this answer came over the replica's own server (HAProxy routes to it),
        # not through Serve's fallback proxy; `rthub up` and the tests wait for it.
        return JSONResponse({"ready": ready, "connections": len(self.core.connections),
                             "direct": served_directly(request._send)},
                            status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.core.metrics.render(), media_type=PROMETHEUS_TEXT)

    async def __del__(self) -> None:
        await self.core.drain()


def build(settings: Settings) -> Any:
    """The Serve application for ``rayserve.run``."""
    scaling: dict[str, Any] = (
        {"autoscaling_config": settings.gateway_autoscaling} if settings.gateway_autoscaling
        else {"num_replicas": settings.gateway_replicas})
    deployment = rayserve.deployment(
        Gateway, name="gateway", **scaling,
        max_ongoing_requests=settings.max_sockets_per_replica,
        max_queued_requests=-1, ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S, graceful_shutdown_wait_loop_s=0.5,
    )
    return deployment.bind(settings)


def start(settings: Settings, app_name: str = "rthub") -> None:
    """Start Serve's HTTP ingress on the configured address and deploy the gateway."""
    rayserve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    rayserve.run(build(settings), name=app_name, route_prefix="/")
