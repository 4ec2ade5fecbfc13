"""The real hub for gateway tests: Ray Serve on a free port, real Redis and PostgreSQL.

One Serve application per backend pair (embedded PostgreSQL + embedded Redis; and the
external servers from RTHUB_TEST_POSTGRES_URL / RTHUB_TEST_REDIS_URL), each test in a tenant
of its own so rooms, sessions and streams never meet.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ray import serve as rayserve

from actors.client import ActorSystem
from cluster.ingress import free_port
from cluster.local import find_operator, ready_at
from notify.service import stop as stop_notifier
from rthub.config import Settings
from serve.app import build
from serve.auth import issue_token
from tests.conftest import create_database, make_settings

EXTERNAL_REDIS = os.environ.get("RTHUB_TEST_REDIS_URL")
DIRECT_INGRESS = os.environ.get("RTHUB_TEST_INGRESS", "direct") == "direct"
SECRET = "test-secret-" + uuid.uuid4().hex
# Tests send faster than a person types, in bursts a busy machine may take a while over; the
# rate limit and admission control have tests of their own.
FAST_SENDERS = {"RTHUB_CHAT_RATE": "10000", "RTHUB_CHAT_BURST": "10000",
                "RTHUB_QUEUE_TARGET_MS": "60000", "RTHUB_HOST_QUEUE_LIMIT": "1000000",
                # on, and checked on every frame, but far above what a test sends
                "RTHUB_RATE_LIMITS": "user:*=100000/100000,ip:connect=100000/100000,"
                                     "ip:http=100000/100000,tenant:*=1000000/1000000",
                # the analytics tests wait for a flush to Redis: a short one
                "RTHUB_ANALYTICS_FLUSH_S": "0.5"}


@dataclass
class Hub:
    """A deployed gateway and what tests need to reach it."""

    url: str
    http: str  # Serve's HTTP ingress for this app: /v1/...
    operator: str  # a replica's operator port: /metrics, /readyz (the one of a one-replica app)
    settings: Settings
    system: ActorSystem
    tenant: str
    app_name: str | None = None

    def token(self, user: str, **claims) -> str:
        return issue_token(SECRET, user, tenant=claims.pop("tenant", self.tenant), **claims)

    async def undeploy(self) -> None:
        """Delete the app (graceful replica shutdown, as a redeploy does)."""
        assert self.app_name is not None
        await asyncio.to_thread(rayserve.delete, self.app_name)


async def routed(http: str, settings: Settings) -> str:
    """Until the app answers on Serve's HTTP port, a replica is ready on an operator port
    and, under direct ingress, a replica answers on its WebSocket port; that operator origin."""
    operator = await asyncio.to_thread(find_operator, settings, 60)
    assert operator is not None, "no replica became ready on an operator port"
    urls = [f"{http}/healthz"]
    if DIRECT_INGRESS:
        scheme = "https" if settings.tls_cert else "http"
        urls.append(f"{scheme}://127.0.0.1:{settings.ws_port}/healthz")
    for url in urls:
        assert await asyncio.to_thread(ready_at, url, 60), f"{url} never answered"
    return operator


def app_settings(pg_url: str, redis_url: str, **env: str) -> Settings:
    """A test app's settings: a WebSocket port of its own (apps share one Serve)."""
    return make_settings(pg_url, REDIS_URL=redis_url, RTHUB_JWT_SECRET=SECRET,
                         RTHUB_HTTP_HOST="127.0.0.1", RTHUB_WS_PORT=str(free_port()),
                         RTHUB_OPERATOR_PORT=str(free_port()),
                         RTHUB_INGRESS="direct" if DIRECT_INGRESS else "proxy",
                         **{**FAST_SENDERS, **env})


def urls(serve_port: int, name: str, settings: Settings) -> tuple[str, str]:
    """(WebSocket URL, HTTP base) of app ``name``."""
    http = f"http://127.0.0.1:{serve_port}/{name}"
    if DIRECT_INGRESS:
        return f"ws://127.0.0.1:{settings.ws_port}/ws", http
    return f"ws://127.0.0.1:{serve_port}/{name}/ws", http


@pytest.fixture(scope="session", params=["embedded", "external"])
async def deployed(request: pytest.FixtureRequest, serve_port: int
                   ) -> AsyncIterator[tuple[str, str, str, Settings, ActorSystem]]:
    """(ws url, http base, operator origin, settings, actor system) of a gateway app on one
    backend pair."""
    if request.param == "external":
        if not (os.environ.get("RTHUB_TEST_POSTGRES_URL") and EXTERNAL_REDIS):
            pytest.skip("RTHUB_TEST_POSTGRES_URL / RTHUB_TEST_REDIS_URL not set (CI sets them)")
        pg, redis_url = os.environ["RTHUB_TEST_POSTGRES_URL"], EXTERNAL_REDIS
    else:
        pg = request.getfixturevalue("embedded_pg")
        redis_url = request.getfixturevalue("embedded_redis")
    data_dir = str(request.getfixturevalue("tmp_path_factory").mktemp("hub-data"))
    settings = app_settings(await create_database(pg), redis_url, RTHUB_GATEWAY_REPLICAS="2",
                            RTHUB_DATA_DIR=data_dir)
    system = ActorSystem(settings)
    system.start()
    name = f"gw-{request.param}"
    rayserve.run(build(settings), name=name, route_prefix=f"/{name}")
    ws, http = urls(serve_port, name, settings)
    operator = await routed(http, settings)
    yield ws, http, operator, settings, system
    rayserve.delete(name)
    system.shutdown_hosts()
    stop_notifier(settings)


@pytest.fixture
def hub(deployed: tuple[str, str, str, Settings, ActorSystem]) -> Hub:
    url, http, operator, settings, system = deployed
    return Hub(url, http, operator, settings, system, tenant=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def deploy(serve_port: int, embedded_pg: str, embedded_redis: str, tmp_path: Path
                 ) -> AsyncIterator:
    """Deploy a one-replica gateway with environment overrides (embedded backends)."""
    made: list[tuple[str, ActorSystem]] = []

    async def make(**env: str) -> tuple[str, Hub]:
        settings = app_settings(await create_database(embedded_pg), embedded_redis,
                                **{"RTHUB_DATA_DIR": str(tmp_path), **env})
        system = ActorSystem(settings)
        system.start()
        name = f"gw-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(rayserve.run, build(settings), name=name,
                                route_prefix=f"/{name}")
        url, http = urls(serve_port, name, settings)
        operator = await routed(http, settings)
        made.append((name, system))
        return url, Hub(url, http, operator, settings, system, f"t{uuid.uuid4().hex[:8]}",
                        app_name=name)

    yield make
    for name, system in made:
        if name in rayserve.status().applications:
            await asyncio.to_thread(rayserve.delete, name)
        system.shutdown_hosts()
        stop_notifier(system.settings)
