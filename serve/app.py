"""The gateway deployment: Serve starts, health-checks, scales and drains its replicas.

Under RTHUB_INGRESS=direct (the default) each replica binds the WebSocket port itself
(``serve.sockets``: picows, ``SO_REUSEPORT``) and Serve's HTTP ingress carries only the HTTP
API (and ``/healthz``) on a port of its own (Serve's proxy binds with ``SO_REUSEPORT`` too,
and would take WebSocket connections if the two shared one). Under ``proxy`` the WebSockets
come through Serve's proxy as ASGI (``serve.asgi_socket``). ``/metrics`` and ``/readyz`` are
on neither client port: each replica serves them on its operator port (``serve.operator``).

Serve integration (checked against Ray 2.60):

* Drain. Serve counts only its own requests, so sockets on the replica's own port do not
  hold a stopping replica: ``__del__`` stops the listener, closes every socket with 1012 and
  waits for them, within ``graceful_shutdown_timeout_s``. (Through the proxy a socket is a
  request: ``serve.replica_hooks`` starts the same drain as soon as Serve begins waiting.)
* ``check_health`` fails when the listener is gone, so Serve replaces the replica.
* ``record_autoscaling_stats`` reports open sockets for ``serve.autoscaling``'s policy.
* The ASGI app is a bare Starlette ``Router`` built per replica (no FastAPI machinery).
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve as rayserve
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from rthub.config import Settings
from serve.admin import page_routes
from serve.asgi_socket import serve_asgi
from serve.autoscaling import deployment_scaling, reported
from serve.gateway import GatewayCore
from serve.http_api import HttpApi
from serve.operator import OperatorServer
from serve.sockets import SocketServer
from serve.web_app import app_routes

GRACEFUL_SHUTDOWN_S = 10.0
HTTP_REQUESTS_PER_REPLICA = 256  # Serve's max_ongoing_requests when sockets are not requests


@rayserve.ingress()
class Gateway:
    """One gateway replica."""

    async def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.core = GatewayCore(settings)
        await self.core.start()
        self.operator = OperatorServer(self.core, settings.operator_host,
                                       settings.operator_port)
        await self.operator.start()
        self.listener: SocketServer | None = None
        if settings.ingress == "direct":
            self.listener = SocketServer(self.core, settings.http_host, settings.ws_port)
            await self.listener.start()
            self.core.stop_listening = self.listener.stop

    def __serve_build_asgi_app__(self) -> Router:
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz),
            *HttpApi(self.core).routes(),
            *page_routes(),
            *app_routes(self.core.settings),
        ]
        if self.listener is None:
            routes += [WebSocketRoute("/ws", self.ws), WebSocketRoute("/ws/{user_id}", self.ws)]
        return Router(routes=routes)

    async def ws(self, websocket: WebSocket) -> None:
        await serve_asgi(self.core, websocket, websocket.path_params.get("user_id"))

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "gateway": self.core.gateway_id})

    async def check_health(self) -> None:
        """Serve replaces a replica whose WebSocket listener is gone."""
        if self.listener is not None and not self.listener.serving and not self.core.draining:
            raise RuntimeError("the WebSocket listener is not serving")

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Open sockets, for the autoscaling policy (``serve.autoscaling``)."""
        return reported(len(self.core.connections))

    async def __del__(self) -> None:
        try:
            await self.core.drain()
        finally:
            await self.operator.stop()


def build(settings: Settings) -> Any:
    """The Serve application for ``rayserve.run``."""
    direct = settings.ingress == "direct"
    deployment = rayserve.deployment(
        Gateway, name="gateway", **deployment_scaling(settings),
        # through the proxy each socket holds one request slot for its whole life
        max_ongoing_requests=(HTTP_REQUESTS_PER_REPLICA if direct
                              else settings.max_sockets_per_replica),
        max_queued_requests=-1, ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S, graceful_shutdown_wait_loop_s=0.5,
    )
    return deployment.bind(settings)


def app(args: dict[str, Any]) -> Any:
    """The gateway for a Serve config (``import_path: serve.app:app``, ``cluster/``): the
    settings are every node's environment with ``args`` laid over them, checked by
    ``rthub.config`` (``serve.config_args``). No driver starts the actor hosts or the
    notifier: a replica creates each on first use (``get_if_exists``, detached)."""
    from serve.config_args import from_args

    return build(from_args(args))


def start(settings: Settings, app_name: str = "rthub") -> None:
    """Start Serve's HTTP ingress on the configured address and deploy the gateway."""
    http: dict[str, Any] = {"host": settings.http_host, "port": settings.http_port}
    if settings.tls_cert and settings.tls_key:  # HTTPS on the API (read once, at start)
        http.update(ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    rayserve.start(http_options=http)
    rayserve.run(build(settings), name=app_name, route_prefix="/")
