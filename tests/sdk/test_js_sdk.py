"""The JavaScript SDK (sdk/js) under Node's test runner: its unit tests, and its hub tests
against a real hub deployed here (Ray Serve, PostgreSQL, Redis), so ``make test`` runs them.

Node mints its own tokens with the hub's HS256 secret (a test needs many users, short-lived
tokens and a ``notify:send`` one); it reaches Redis only to make it lose a topic's history, as
a restart without persistence would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ray import serve as rayserve

from actors.client import ActorSystem
from notify.service import stop as stop_notifier
from serve.app import build
from tests.conftest import create_database
from tests.serve.conftest import SECRET, app_settings, routed, urls

log = logging.getLogger(__name__)
pytestmark = pytest.mark.node
SDK = Path(__file__).resolve().parents[2] / "sdk" / "js"
NODE_TIMEOUT_S = 300  # the hub tests take ~30 s; a busy machine may take several times that


def node_ready() -> str | None:
    """Why the Node tests cannot run here (None when they can); installs ``ws`` once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed for the JavaScript SDK's tests"
    if not (SDK / "node_modules" / "ws").is_dir():
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                              cwd=SDK, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"npm install failed in {SDK}: {done.stderr[-2000:]}"
    return None


async def run_node(files: list[str], env: dict[str, str]) -> None:
    """``node --test`` on ``files``; a failure shows Node's whole report."""
    reason = await asyncio.to_thread(node_ready)
    if reason:
        pytest.skip(reason)
    only = os.environ.get("RTHUB_SDK_TEST_ONLY")  # a name pattern, to run one test
    pattern = [f"--test-name-pattern={only}"] if only else []
    proc = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-reporter=spec", *pattern, *files, cwd=SDK,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"node --test did not finish in {NODE_TIMEOUT_S} s:\n{out.decode()}")
    report = out.decode()
    log.info("node --test %s:\n%s", " ".join(files), report)
    assert proc.returncode == 0, f"node --test failed:\n{report}"


@pytest.fixture(scope="module")
async def sdk_hub(serve_port: int, embedded_pg: str, embedded_redis: str,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """One gateway app for the module; what Node needs to reach it, as environment."""
    started = time.monotonic()
    data_dir = str(tmp_path_factory.mktemp("sdk-hub"))
    # heartbeats every 3 s so the SDK's pongs are exercised within a test's time
    settings = app_settings(await create_database(embedded_pg), embedded_redis,
                            RTHUB_DATA_DIR=data_dir, WS_HEARTBEAT_INTERVAL="3")
    system = ActorSystem(settings)
    system.start()
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(rayserve.run, build(settings), name=name, route_prefix=f"/{name}")
    ws, http = urls(serve_port, name, settings)
    try:
        await routed(http, settings)
        log.info("the SDK tests' hub deployed in %.1f s", time.monotonic() - started)
        yield {"RTHUB_SDK_TEST_URL": ws, "RTHUB_SDK_TEST_HTTP": http,
               "RTHUB_SDK_TEST_SECRET": SECRET, "RTHUB_SDK_TEST_REDIS": embedded_redis,
               "RTHUB_SDK_TEST_TENANT": f"t{uuid.uuid4().hex[:10]}"}
    finally:
        await asyncio.to_thread(rayserve.delete, name)
        system.shutdown_hosts()
        stop_notifier(settings)


UNIT = ["test/vectors.test.js", "test/units.test.js"]
HUB = ["test/hub.test.js", "test/features.test.js"]


async def test_js_sdk_units() -> None:
    """OT and clock against the shared vectors, PlaylistDoc, the scheduler, backoff, the
    token refresh timing, the heartbeat watchdog against a local socket server: no hub
    needed."""
    await run_node(UNIT, {})


async def test_js_sdk_against_the_hub(sdk_hub: dict[str, str]) -> None:
    """Connect, tokens, token refresh on the open socket (and 4401 "token expired"),
    requests, pipelining, errors, resume, reload, chat, parties, playlists and the inbox,
    through the SDK against the real hub."""
    await run_node(HUB, sdk_hub)
