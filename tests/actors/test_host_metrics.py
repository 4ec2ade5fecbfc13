"""Actor hosts export their figures through Ray's metrics agent, where Prometheus scrapes
every node: the names dashboards and alerts use are the ones the agent serves."""

import asyncio
import time
import urllib.request
import uuid

import ray

from actors.client import ActorSystem
from actors.host_metrics import EXPORT_S, exported_names
from tests.conftest import create_database, make_settings


def agent_metrics() -> str:
    """This node's metrics agent, as Prometheus reads it."""
    port = ray._private.worker.global_worker.node.metrics_export_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def series(text: str, name: str, namespace: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'namespace="{namespace}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_hosts_messages_and_activations_reach_the_metrics_agent(ray_session,
                                                                        embedded_pg):
    namespace = f"m{uuid.uuid4().hex[:8]}"
    system = ActorSystem(make_settings(await create_database(embedded_pg), RTHUB_HOSTS="1",
                                       RTHUB_NAMESPACE=namespace))
    system.start()
    try:
        for i in range(5):
            await system.ref("session", f"u{i}", "metrics").ask(
                "session.connect", {"connection_id": f"c{i}", "gateway": "gw-test"})
        deadline = time.monotonic() + 6 * EXPORT_S + 20  # exported every EXPORT_S, then read
        while True:
            text = await asyncio.to_thread(agent_metrics)
            messages = series(text, "ray_rthub_host_messages_total", namespace)
            if (messages or 0) >= 5 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert messages is not None
        assert messages >= 5
        assert (series(text, "ray_rthub_host_activations_total", namespace) or 0) >= 5
        assert series(text, "ray_rthub_host_residents", namespace) is not None
        assert series(text, "ray_rthub_host_checkpoint_lag_seconds", namespace) is not None
        served = {line.split("{", 1)[0] for line in text.splitlines()
                  if line.startswith("ray_rthub_host_")}
        gauges_and_seen = {n for n in exported_names() if not n.endswith("_total")}
        assert gauges_and_seen <= served  # every gauge is exported from the first reading
    finally:
        system.shutdown_hosts()
