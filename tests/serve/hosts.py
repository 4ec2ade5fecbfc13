"""Host actors in tests: kill one and wait for Ray to bring it back."""

from __future__ import annotations

import asyncio

import ray


async def kill_and_restart(host) -> None:
    """Kill a host and return once Ray has restarted it (a new process answers)."""
    pid = (await host.stats.remote())["pid"]
    ray.kill(host, no_restart=False)
    for _ in range(300):
        try:
            if (await host.stats.remote())["pid"] != pid:
                return
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            pass
        await asyncio.sleep(0.1)  # Ray is restarting the actor; no event to await
    raise AssertionError("the host did not come back")
