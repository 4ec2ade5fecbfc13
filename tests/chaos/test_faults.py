"""Issue 18's faults, one at a time, under a modest steady load (rooms, playlists, parties;
two senders, four subscribers over two gateway replicas): every acknowledged message reaches
every subscriber's view exactly once after dedupe by ``seq``, and every client resumes."""

from __future__ import annotations

import pytest

from tests.chaos import harness
from tests.chaos.faults import FullDisk
from tests.chaos.harness import ChaosHub, assert_clean, verdict
from tests.chaos.load import Shape

SHAPE = harness.BOUNDED


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
