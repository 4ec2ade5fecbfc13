"""The chaos suite's hub and fault catalogue, shared by ``tests/chaos`` and
``benchmarks/chaos.py``: a gateway app wired to servers the suite owns, the faults as
``Fault`` objects, and one scenario run around a fault."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ray import serve as rayserve

from actors.client import ActorSystem
from benchmarks.multinode import spread_app
from notify.service import stop as stop_notifier
from rthub.config import Settings
from serve.app import build
from serve.auth import issue_token
from tests import conftest as suite  # also sets Ray's flags (worker niceness ...) for ray.init
from tests.chaos import faults
from tests.chaos.faults import Fault, FullDisk, OwnedPostgres, OwnedRedis
from tests.chaos.load import Refused, Report, Scenario, Shape
from tests.serve.conftest import SECRET, app_settings, routed, urls

log = logging.getLogger(__name__)


@dataclass
class ChaosHub:
    """A deployed gateway on owned servers, and the handles its faults need."""

    url: str
    http: str
    settings: Settings
    system: ActorSystem
    app_name: str
    redis: OwnedRedis
    postgres: OwnedPostgres
    blob_dir: Path

    def tokens(self, tenant: str) -> Callable[[str], str]:
        return lambda user: issue_token(SECRET, user, tenant=tenant, ttl_s=7200)

    async def close(self) -> None:
        if self.app_name in rayserve.status().applications:
            await asyncio.to_thread(rayserve.delete, self.app_name)
        self.system.shutdown_hosts()
        stop_notifier(self.settings)


async def deploy(serve_port: int, redis: OwnedRedis, postgres: OwnedPostgres, work: Path,
                 replicas: int = 2, per_node: int | None = None, **env: str) -> ChaosHub:
    """A gateway app of ``replicas`` replicas on ``redis`` and ``postgres`` (a fresh
    database), its blobs under ``work/blobs`` (where ``FullDisk`` mounts); on a cluster of
    several nodes, at most ``per_node`` replicas a node when given."""
    blob_dir = (work / "blobs").resolve()
    blob_dir.mkdir(parents=True, exist_ok=True)
    settings = app_settings(await suite.create_database(postgres.url), redis.url,
                            RTHUB_GATEWAY_REPLICAS=str(replicas), RTHUB_DATA_DIR=str(work),
                            RTHUB_BLOB_STORE=f"file://{blob_dir}",
                            # a resume repeats what came since the last pong: keep it short
                            WS_HEARTBEAT_INTERVAL="5", **env)
    system = ActorSystem(settings)
    system.start()
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    app = build(settings) if per_node is None else spread_app(settings, per_node)
    await asyncio.to_thread(rayserve.run, app, name=name, route_prefix=f"/{name}")
    url, http = urls(serve_port, name, settings)
    await routed(http, settings)
    return ChaosHub(url, http, settings, system, name, redis, postgres, blob_dir)


# -- the tests' load and verdict ------------------------------------------------------------

BOUNDED = Shape(rooms=4, playlists=2, parties=2, senders=2, subscribers=4, rate=100)
"""The tests' load: modest, so the suite stays short on a busy 2-core machine."""


def verdict(report: Report) -> str:
    """Everything a failure needs to be read without a rerun."""
    parts = {
        "acked": report.acked_total, "lost": report.lost, "lost where": report.lost_detail[:8],
        "seq jumps": report.gap_detail[:8], "not durable": report.not_durable[:8],
        "unresumed": report.unresumed[:8], "duplicates": report.duplicates,
        "refused": report.refused[:3], "unacked": report.unacked[:3],
        "uploads failed": report.upload_failures, "drops": report.drops,
        "resumed": report.resumed, "fresh sessions": report.fresh,
        "resumes refused": report.resume_refusals[:3],
        "recover p50/p99 s": (report.pct(0.5), report.pct(0.99)),
    }
    return f"{report.fault}: " + ", ".join(f"{k} {v}" for k, v in parts.items())


def assert_clean(report: Report) -> None:
    """What every fault must leave: all acked and durable, nothing lost or out of order,
    every client back (``test_faults.py``, and the node kill of ``tests/multinode``)."""
    log.warning("%s", verdict(report))
    assert report.acked_total > 0, verdict(report)
    assert not report.not_durable, verdict(report)
    assert not report.refused, verdict(report)
    assert not report.unacked, verdict(report)
    assert report.lost == 0, verdict(report)
    assert report.out_of_order == 0, verdict(report)
    assert not report.unresumed, verdict(report)


# -- the faults ------------------------------------------------------------------------------

def kill_host(hub: ChaosHub, tenant: str, scenario: Scenario) -> Fault:
    """Kill the host actor of the scenario's first room (Ray restarts it)."""
    room = next(t for t in scenario.topics if t.kind == "room")

    async def inject(fault: Fault) -> None:
        fault.mark_end()  # a kill is instantaneous: recovery counts from it
        await faults.kill_host(hub.system, (tenant, "room", room.key))
    return Fault("kill a host actor", inject)


def kill_replica(hub: ChaosHub, scenario: Scenario) -> Fault:
    """SIGKILL the gateway replica that serves the first subscriber's socket, so the fault
    always hits clients (the kernel, not the suite, spreads sockets over replicas)."""
    sock = scenario.subscribers[0].client.sock
    assert sock is not None
    assert sock.transport is not None
    pid = faults.server_pid(sock.transport.get_extra_info("sockname")[1],
                            hub.settings.ws_port)

    async def inject(fault: Fault) -> None:
        fault.mark_end()
        victim = await faults.kill_gateway_replica(hub.app_name, pid)
        fault.notes.append(f"killed {victim} (pid {pid})")
    return Fault("kill a gateway replica", inject)


def restart_postgres(hub: ChaosHub) -> Fault:
    async def inject(fault: Fault) -> None:
        await asyncio.to_thread(hub.postgres.stop)
        await asyncio.to_thread(hub.postgres.start)
        fault.mark_end()
    return Fault("restart PostgreSQL", inject)


def restart_redis(hub: ChaosHub) -> Fault:
    async def inject(fault: Fault) -> None:
        await asyncio.to_thread(hub.redis.restart)
        fault.mark_end()
    return Fault("restart Redis", inject)


def pause_redis(hub: ChaosHub, hold_s: float = 10.0) -> Fault:
    async def inject(fault: Fault) -> None:
        hub.redis.pause()
        try:
            await asyncio.sleep(hold_s)  # the fault is a pause of this length
        finally:
            hub.redis.resume()
        fault.mark_end()
    return Fault(f"pause Redis {hold_s:g} s", inject)


def fill_disk(hub: ChaosHub, hold_s: float = 5.0) -> Fault:
    """The blob store's filesystem full for ``hold_s``: a tmpfs mounted on it (mounted when
    the fault starts, so blobs written before it stay on the disk below), filled to ENOSPC,
    then freed."""
    disk = FullDisk(hub.blob_dir)

    async def inject(fault: Fault) -> None:
        disk.mount()
        try:
            await asyncio.to_thread(disk.fill)
            await asyncio.sleep(hold_s)  # the fault is a full disk for this long
            disk.free()
            fault.mark_end()
        finally:
            disk.free()
    return Fault("fill the blob store's disk", inject, cleanup=disk.unmount)


def together(first: Fault, second: Fault) -> Fault:
    """Two faults at once: both start together; the pair ends when the later one does."""

    async def inject(fault: Fault) -> None:
        for one in (first, second):
            one.started = fault.started
        await asyncio.gather(first.inject(first), second.inject(second))
        fault.ended = max(first.ended, second.ended)
        fault.notes += first.notes + second.notes
    def cleanup() -> None:
        for one in (first, second):
            if one.cleanup is not None:
                one.cleanup()
    return Fault(f"{first.name} + {second.name}", inject, cleanup=cleanup)


FaultMaker = Callable[[ChaosHub, str, Scenario], Fault]


async def run(hub: ChaosHub, shape: Shape, make_fault: FaultMaker | None,
              warm_s: float = 2.0, after_s: float = 3.0,
              on_report: Callable[[Report], Awaitable[None]] | None = None) -> Report:
    """One scenario on a fresh tenant: set up, load for ``warm_s``, the fault, ``after_s``
    more of load, settle, check."""
    tenant = f"c{uuid.uuid4().hex[:8]}"
    scenario = Scenario(hub.url, hub.http, hub.tokens(tenant), shape)
    fault: Fault | None = None
    phase = "setup"
    try:
        await scenario.setup()
        scenario.start()
        phase = "load"
        await asyncio.sleep(warm_s)  # load runs undisturbed first
        if make_fault is not None:
            fault = make_fault(hub, tenant, scenario)
            phase = f"fault ({fault.name})"
            fault.mark_start()
            await fault.inject(fault)
            log.info("%s over after %.1f s", fault.name, fault.ended - fault.started)
        phase = "load after the fault"
        await asyncio.sleep(after_s)  # load runs on after the fault
        await scenario.settle()
        phase = "check (reading every history)"
        report = await scenario.check(fault)
        if on_report is not None:
            await on_report(report)
        return report
    except Refused as err:  # a request the hub refused for good: say when, not just what
        raise AssertionError(f"the hub refused a request during {phase}: {err}") from err
    finally:
        if fault is not None and fault.cleanup is not None:
            fault.cleanup()
        await scenario.close()
