"""Gateway replicas scaled on open sockets (serve.autoscaling), on the suite's real Ray."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import websockets
from ray import serve as rayserve

from rthub import config
from serve.autoscaling import DEFAULT_DOWNSCALE_DELAY_S, SocketsPolicy, deployment_scaling
from tests.serve.client import Client


def test_the_policy_asks_for_enough_replicas_for_the_target_sockets_each():
    policy = SocketsPolicy(target_sockets_per_replica=100)

    def decide(sockets: dict[str, float], target_now: int = 3) -> int:
        ctx = SimpleNamespace(aggregated_metrics={"sockets": sockets} if sockets else {},
                              target_num_replicas=target_now)
        return policy(ctx)[0]

    assert decide({"a": 150.0, "b": 130.0}) == 3
    assert decide({"a": 100.0}) == 1
    assert decide({"a": 0.0, "b": 0.0}) == 1  # never below one (Serve's bounds apply after)
    assert decide({}, target_now=2) == 2  # no report yet: keep the current target


def test_direct_ingress_scales_on_sockets_with_a_long_default_downscale_delay():
    settings = config.load({"RTHUB_GATEWAY_AUTOSCALING": json.dumps(
        {"min_replicas": 1, "max_replicas": 4, "target_sockets_per_replica": 2000})})
    scaling = deployment_scaling(settings)["autoscaling_config"]
    assert scaling.policy.get_policy() is SocketsPolicy
    assert scaling.policy.policy_kwargs == {"target_sockets_per_replica": 2000}
    assert scaling.downscale_delay_s == DEFAULT_DOWNSCALE_DELAY_S
    proxied = config.load({"RTHUB_INGRESS": "proxy", "RTHUB_GATEWAY_AUTOSCALING": json.dumps(
        {"max_replicas": 4, "target_sockets_per_replica": 2000})})
    through_proxy = deployment_scaling(proxied)["autoscaling_config"]
    assert through_proxy.target_ongoing_requests == 2000  # a socket is a request there


async def running_replicas(app: str) -> int:
    status = await asyncio.to_thread(rayserve.status)
    deployment = status.applications[app].deployments["gateway"]
    return deployment.replica_states.get("RUNNING", 0)


async def until_replicas(app: str, wanted: int, within_s: float = 60) -> None:
    """Serve has no event for a replica count: poll its status, bounded."""
    async with asyncio.timeout(within_s):
        while await running_replicas(app) != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.5)


async def test_replicas_follow_open_sockets_up_and_down(deploy):
    url, hub = await deploy(RTHUB_GATEWAY_AUTOSCALING=json.dumps({
        "min_replicas": 1, "max_replicas": 2, "target_sockets_per_replica": 4,
        "upscale_delay_s": 0, "downscale_delay_s": 2, "look_back_period_s": 11}))
    assert await running_replicas(hub.app_name) == 1
    clients = [await Client.connect(url, hub.token(f"u{i}")) for i in range(6)]
    await until_replicas(hub.app_name, 2)  # 6 sockets, 4 a replica: two replicas
    newcomer = await Client.connect(url, hub.token("late"))  # served while it scaled
    for client in (*clients, newcomer):
        assert (await client.ask("ping"))["server_time_ms"] > 0
        await client.close()
    await until_replicas(hub.app_name, 1)  # no sockets: back to the minimum
    after = await connect_past_restarts(url, hub.token("after"))
    assert (await after.ask("ping"))["server_time_ms"] > 0
    await after.close()


async def connect_past_restarts(url: str, token: str, attempts: int = 3) -> Client:
    """Connect as a client must: Serve may list the removed replica as gone a moment before
    it stops listening, so a socket it takes then is closed with 1012 (reconnect), and the
    next connection lands on a replica that stays."""
    for _ in range(attempts - 1):
        try:
            return await Client.connect(url, token)
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 1012:
                raise
    return await Client.connect(url, token)
