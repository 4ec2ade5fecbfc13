"""The ingress: a Ray Serve deployment with a FastAPI app (``/ws``, health, metrics).

Sharp edges handled here (DESIGN.md): each socket holds one ``max_ongoing_requests`` slot, so
it is set to RTHUB_MAX_SOCKETS_PER_REPLICA; ``request_timeout_s`` is never set (it would cut
long-lived sockets); on graceful shutdown Serve first waits for in-flight requests (sockets)
up to ``graceful_shutdown_timeout_s`` and then calls ``__del__``, which closes every socket
with 1012 so clients resume on another replica.

No ``from __future__ import annotations`` in this module: Serve rewrites the signatures of
class-based routes, and with string annotations FastAPI no longer sees ``websocket:
WebSocket``, so every upgrade is refused with 403 (found the hard way; Ray 2.60).
"""

import logging
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from ray import serve as rayserve

from rthub.config import Settings
from serve.gateway import GatewayCore

api = FastAPI(title="rthub", docs_url=None, redoc_url=None)
GRACEFUL_SHUTDOWN_S = 5.0


@rayserve.ingress(api)
class Gateway:
    """One ingress replica."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.core = GatewayCore(settings)

    @api.websocket("/ws")
    async def ws(self, websocket: WebSocket) -> None:
        await self.core.serve(websocket)

    @api.websocket("/ws/{user_id}")
    async def ws_user(self, websocket: WebSocket, user_id: str) -> None:
        await self.core.serve(websocket, user_id)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"ok": True, "gateway": self.core.gateway_id}

    @api.get("/readyz")
    async def readyz(self) -> JSONResponse:
        try:
            await self.core.redis.ping()
            ready = not self.core.draining
        except Exception as exc:
            return JSONResponse({"ready": False, "reason": f"redis: {exc}"}, status_code=503)
        return JSONResponse({"ready": ready, "connections": len(self.core.connections)},
                            status_code=200 if ready else 503)

    @api.get("/metrics")
    async def metrics(self) -> Response:
        return Response(self.core.metrics.render(), media_type=CONTENT_TYPE_LATEST)

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
