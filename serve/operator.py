"""The operator port: ``/metrics``, ``/readyz`` and ``/healthz`` of one gateway replica, off the
client ports.

Clients reach the WebSocket port and Serve's HTTP API; what only operators should see (the
replica's counters, its readiness) is served here instead, on RTHUB_OPERATOR_HOST (loopback by
default: a scraper or kubelet on the node, or an address a network policy guards). Each
replica takes the first free port from RTHUB_OPERATOR_PORT up, so replicas sharing a node
get one port each (8002, 8003, ...) and a scrape always reads one replica's counters whole,
never a different replica each time as a shared port would. aiohttp serves it: the readiness
check awaits Redis, which picows' synchronous request hook cannot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import web

from rthub.config import OPERATOR_PORTS

if TYPE_CHECKING:
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4"


class OperatorServer:
    """The operator listener of one replica."""

    def __init__(self, core: GatewayCore, host: str, first_port: int) -> None:
        self.core = core
        self.host = host
        self.first_port = first_port
        self.port: int | None = None  # the one this replica bound
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind the first free port from ``first_port``; return it."""
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/healthz", self.healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        last: OSError | None = None
        for port in range(self.first_port, min(self.first_port + OPERATOR_PORTS, 65536)):
            site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as err:  # taken (another replica, or another program)
                last = err
                await site.stop()  # what it did bind (one of several addresses) is let go
                continue
            self.port = port
            log.info("operator endpoints of %s on %s:%d", self.core.gateway_id, self.host, port)
            return port
        await self._runner.cleanup()
        raise OSError(f"no free operator port in {self.first_port}-"
                      f"{self.first_port + OPERATOR_PORTS - 1} on {self.host}: {last}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def metrics(self, request: web.Request) -> web.Response:
        await self.core.metrics.event_lag.refresh(self.core.redis)
        return web.Response(body=self.core.metrics.render(),
                            headers={"Content-Type": PROMETHEUS_TEXT})

    def _who(self) -> dict[str, str]:
        """Which hub and replica answered (a port scan finds its own hub by namespace)."""
        return {"gateway": self.core.gateway_id, "namespace": self.core.settings.namespace}

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, **self._who()})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready: Redis, PostgreSQL and an actor host (Ray) answer within
        ``READY_TIMEOUT_S`` each, and the replica is not draining (a balancer stops sending
        new sockets to a draining one). The body says which check failed and why."""
        core = self.core
        checks = dict(zip(("redis", "postgres", "ray"), await asyncio.gather(
            _check(core.redis.ping()), _check(_postgres(core)), _check(_ray(core))),
            strict=True))
        ready = not core.draining and all(v == "ok" for v in checks.values())
        body = {"ready": ready, "draining": core.draining, "checks": checks,
                "connections": len(core.connections), **self._who()}
        if not ready:
            failed = [f"{k}: {v}" for k, v in checks.items() if v != "ok"]
            body["reason"] = "draining" if core.draining else "; ".join(failed)
        return web.json_response(body, status=200 if ready else 503)


READY_TIMEOUT_S = 2.0


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_S)
    except TimeoutError:
        return f"no answer in {READY_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return "ok"


async def _postgres(core: GatewayCore) -> None:
    await (await core.db()).fetchval("SELECT 1")


async def _ray(core: GatewayCore) -> None:
    """The first actor host answers (Ray's scheduler, the host and its PostgreSQL pool)."""
    await core.system.host("rthub-host-0").stats.remote()
