"""Issue 18's faults, one at a time, under a modest steady load (rooms, playlists, parties;
two senders, four subscribers over two gateway replicas): every acknowledged message reaches
every subscriber's view exactly once after dedupe by ``seq``, and every client resumes."""

from __future__ import annotations

import logging

import pytest

from tests.chaos import harness
from tests.chaos.faults import FullDisk
from tests.chaos.harness import ChaosHub
from tests.chaos.load import Report, Shape

log = logging.getLogger(__name__)
SHAPE = Shape(rooms=4, playlists=2, parties=2, senders=2, subscribers=4, rate=100)


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
    log.warning("%s", verdict(report))
    assert report.acked_total > 0, verdict(report)
    assert not report.not_durable, verdict(report)
    assert not report.refused, verdict(report)
    assert not report.unacked, verdict(report)
    assert report.lost == 0, verdict(report)
    assert report.out_of_order == 0, verdict(report)
    assert not report.unresumed, verdict(report)


async def test_baseline_without_a_fault(chaos_hub: ChaosHub) -> None:
    assert_clean(await harness.run(chaos_hub, SHAPE, None, warm_s=2, after_s=0))


async def test_kill_a_host_actor(chaos_hub: ChaosHub) -> None:
    report = await harness.run(chaos_hub, SHAPE,
                               lambda hub, tenant, sc: harness.kill_host(hub, tenant, sc))
    assert_clean(report)


async def test_kill_a_gateway_replica(chaos_hub: ChaosHub) -> None:
    report = await harness.run(chaos_hub, SHAPE,
                               lambda hub, tenant, sc: harness.kill_replica(hub, sc))
    assert_clean(report)
    assert report.drops, f"the first subscriber's replica was killed: {verdict(report)}"
    assert report.resumed, verdict(report)  # by token, on the other replica
    assert not report.resume_refusals, verdict(report)


async def test_restart_postgres(chaos_hub: ChaosHub) -> None:
    report = await harness.run(chaos_hub, SHAPE,
                               lambda hub, tenant, sc: harness.restart_postgres(hub))
    assert_clean(report)


async def test_restart_redis(chaos_hub: ChaosHub) -> None:
    report = await harness.run(chaos_hub, SHAPE, lambda hub, tenant, sc: harness.restart_redis(hub))
    assert_clean(report)


async def test_pause_redis(chaos_hub: ChaosHub) -> None:
    assert_clean(await harness.run(chaos_hub, SHAPE,
                                   lambda hub, tenant, sc: harness.pause_redis(hub, 10)))


async def test_fill_the_blob_stores_disk(chaos_hub: ChaosHub) -> None:
    reason = FullDisk.available()
    if reason is not None:
        pytest.skip(f"a full disk needs a tmpfs of the suite's own: {reason}")
    shape = Shape(**{**SHAPE.__dict__, "attach_every": 5})
    report = await harness.run(chaos_hub, shape,
                               lambda hub, tenant, sc: harness.fill_disk(hub, 4))
    assert report.upload_failures, f"no upload met the full disk: {verdict(report)}"
    assert set(report.upload_failures) == {"HTTP 503"}, verdict(report)  # retry-after, not 500
    assert_clean(report)
