"""The chaos suite's hub: one gateway app (two replicas) on a Redis and a PostgreSQL the
suite owns, so restarting them never touches the servers the rest of the suite uses."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.chaos.faults import REDIS_SERVER, OwnedPostgres, OwnedRedis
from tests.chaos.harness import ChaosHub, deploy


@pytest.fixture(scope="module")
def owned_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnedRedis]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary: the chaos suite restarts a Redis of its own")
    server = OwnedRedis(Path(tmp_path_factory.mktemp("chaos-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def owned_pg() -> Iterator[OwnedPostgres]:
    """Not under pytest's basetemp: the server runs as another system user when the suite
    is root, and any pytest session starting meanwhile makes that root private again (0700),
    after which ``pg_ctl`` can no longer reach the data dir to stop or start it."""
    work = Path(tempfile.mkdtemp(prefix="rthub-chaos-pg-"))
    server = OwnedPostgres(work)
    yield server
    server.shutdown()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
async def chaos_hub(serve_port: int, owned_redis: OwnedRedis, owned_pg: OwnedPostgres,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosHub]:
    hub = await deploy(serve_port, owned_redis, owned_pg,
                       Path(tmp_path_factory.mktemp("chaos-hub")))
    yield hub
    await hub.close()
