"""Ray's own floor: what one actor-to-async-actor call costs here, without rthub.

    python -m benchmarks.raycall            # 300 timed calls, then 5 s at 200 and 1,000 calls/s

The round trip is what an entity request cannot go below (the gateway is a Serve replica
calling a host actor); the CPU per call, caller plus callee, is what batching messages into
fewer calls saves. Ray runs on core 0 (``taskset``, as the benchmarked servers do).
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import time

import psutil
import ray

log = logging.getLogger("benchmarks.raycall")


@ray.remote
class Callee:
    async def echo(self, batch: list) -> list:
        return batch

    def pid(self) -> int:
        return os.getpid()


@ray.remote
class Caller:
    """Calls from inside an actor, as a gateway replica does."""

    def __init__(self, callee: ray.actor.ActorHandle) -> None:
        self.callee = callee
        # one message as the gateway sends it: (tenant, kind, id, type, payload, wants reply)
        self.batch = [("t", "room", "r1", "presence.list", {"user": "u"}, True)]

    def pid(self) -> int:
        return os.getpid()

    async def round_trips(self, count: int) -> list[float]:
        for _ in range(50):
            await self.callee.echo.remote(self.batch)
        times = []
        for _ in range(count):
            start = time.perf_counter()
            await self.callee.echo.remote(self.batch)
            times.append((time.perf_counter() - start) * 1000)
        return sorted(times)

    async def paced(self, rate: float, seconds: float) -> int:
        calls, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            await self.callee.echo.remote(self.batch)
            calls += 1
            await asyncio.sleep(max(0.0, start + calls / rate - time.monotonic()))
        return calls


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.sched_setaffinity(0, {0})  # Ray's processes inherit the core
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    callee = Callee.options(max_concurrency=1000).remote()
    caller = Caller.remote(callee)
    procs = [psutil.Process(ray.get(a.pid.remote())) for a in (caller, callee)]
    times = ray.get(caller.round_trips.remote(300))
    lines = [f"`python -m benchmarks.raycall` — {time.strftime('%Y-%m-%d')}, Ray on core 0", "",
             f"actor -> async actor round trip: p50 {statistics.median(times):.2f} ms, "
             f"p99 {times[int(len(times) * 0.99)]:.2f} ms", ""]
    for rate in (200, 1000):
        before = [cpu(p) for p in procs]
        calls = ray.get(caller.paced.remote(rate, 5.0))
        used = [cpu(p) - b for p, b in zip(procs, before, strict=True)]
        lines.append(f"{calls / 5:,.0f} calls/s: CPU per call {used[0] / calls * 1e6:,.0f} µs "
                     f"caller + {used[1] / calls * 1e6:,.0f} µs callee")
    ray.shutdown()
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
