"""The chaos suite on several Ray nodes (issue 18's "kill the Ray worker node process of a
multi-node cluster"): the chaos hub spread over a ``benchmarks.multinode.LocalNodes`` cluster,
and the fault that kills one of its worker nodes whole.

A ``ray.cluster_utils.Cluster`` cannot share a process with the suite's ``ray.init``, so
this runs where a cluster is the driver's Ray: ``python -m benchmarks.chaos --nodes 3`` and
the multinode scenario's process (``tests/multinode/scenario.py``), which reuses its cluster
for one node-kill run rather than starting a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.multinode import LocalNodes, NodeInfo, poll, replica_spread
from tests.chaos import harness
from tests.chaos.faults import Fault, OwnedPostgres, OwnedRedis, server_pid
from tests.chaos.harness import ChaosHub
from tests.chaos.load import Report, Scenario, Shape

log = logging.getLogger(__name__)
NODE_KILL = "kill a Ray worker node"


async def deploy_spread(nodes: LocalNodes, serve_port: int, redis: OwnedRedis,
                        postgres: OwnedPostgres, work: Path, **env: str) -> ChaosHub:
    """A chaos hub with a host and a gateway replica on every node: as many hosts as nodes,
    each reserving a CPU (Ray's scheduler then puts one on each node), and the replicas at
    most one a node (``max_replicas_per_node``). Returns once the replicas are spread."""
    count = len(nodes.nodes)
    hub = await harness.deploy(serve_port, redis, postgres, work, replicas=count, per_node=1,
                               RTHUB_HOSTS=str(count), RTHUB_HOST_CPUS="1", **env)
    await asyncio.to_thread(poll, lambda: replica_spread(nodes, count, 1, hub.app_name), 120,
                            0.5, f"{count} replicas of {hub.app_name}, one a node")
    return hub


def placement(hub: ChaosHub, nodes: LocalNodes, tenant: str, scenario: Scenario
              ) -> dict[str, Any]:
    """Where the scenario runs now: each host's node and pid, how many of the scenario's
    rooms each node's hosts run, and how many subscriber sockets each node's replica holds
    (the server end of the socket's loopback connection, and the raylet it descends from)."""
    hosts = nodes.host_placement(hub.settings)
    rooms = Counter(hosts[hub.system.host_for((tenant, "room", t.key))]["node"]
                    for t in scenario.topics if t.kind == "room")
    sockets: Counter[str | None] = Counter()
    for sub in scenario.subscribers:
        sock = sub.client.sock
        if sock is not None and sock.transport is not None:
            pid = server_pid(sock.transport.get_extra_info("sockname")[1], hub.settings.ws_port)
            sockets[nodes.node_of_pid(pid)] += 1
    return {"hosts": hosts, "rooms": rooms, "sockets": sockets}


def choose_victim(nodes: LocalNodes, where: dict[str, Any]) -> NodeInfo:
    """The worker node (never the head: the GCS and Serve's controller live there) that runs
    a host and whose replica serves the most subscribers (then: the most rooms)."""
    with_host = {h["node"] for h in where["hosts"].values()}
    workers = [n for n in nodes.nodes if n.name != "head" and n.name in with_host]
    if not workers:
        raise RuntimeError(f"no worker node runs a host: {where['hosts']}")
    victim = max(workers, key=lambda n: (where["sockets"][n.name], where["rooms"][n.name]))
    if not where["sockets"][victim.name]:
        raise RuntimeError(f"no worker node with a host serves a subscriber: {where}")
    return victim


def kill_node(hub: ChaosHub, nodes: LocalNodes, tenant: str, scenario: Scenario) -> Fault:
    """SIGKILL a worker node whole (``LocalNodes.kill_node``: its raylet and every process
    under it, the host, the gateway replica and Serve's proxy among them), chosen by
    ``choose_victim``. The fault ends at the kill; ``inject`` returns once the GCS has
    declared the node dead and its hosts answer again from another node."""
    where = placement(hub, nodes, tenant, scenario)
    victim = choose_victim(nodes, where)
    before = where["hosts"]
    moved = sorted(name for name, h in before.items() if h["node"] == victim.name)

    def hosts_back() -> dict[str, Any] | None:
        with contextlib.suppress(Exception):  # a host restarting, or the GCS not sure yet
            if victim.node_id in nodes.alive_node_ids():
                return None
            now = nodes.host_placement(hub.settings)
            if all(now[n]["pid"] != before[n]["pid"] and now[n]["node"] for n in moved):
                return now
        return None

    async def inject(fault: Fault) -> None:
        killed = await asyncio.to_thread(nodes.kill_node, victim)
        fault.mark_end()  # a kill is instantaneous: recovery counts from it
        fault.notes.append(
            f"killed {victim.name} ({len(killed)} processes; its hosts {moved} ran "
            f"{where['rooms'][victim.name]} of the rooms, its replica served "
            f"{where['sockets'][victim.name]} of {len(scenario.subscribers)} subscribers)")
        now = await asyncio.to_thread(poll, hosts_back, 120, 0.5,
                                      f"the hosts of {victim.name} back on another node")
        fault.notes.append(f"hosts back on {sorted({now[n]['node'] for n in moved})} "
                           f"{time.monotonic() - fault.ended:.1f} s after the kill")
    return Fault(NODE_KILL, inject)


async def node_kill_once(nodes: LocalNodes, serve_port: int, work: Path, shape: Shape,
                         warm_s: float = 2.0, after_s: float = 3.0) -> Report:
    """One node-kill run on a hub of its own (owned Redis and PostgreSQL under ``work``),
    everything but the cluster stopped after: the suite's test of the fault."""
    redis = OwnedRedis(work / "redis")
    redis.start()
    postgres = OwnedPostgres(work / "pg")
    try:
        hub = await deploy_spread(nodes, serve_port, redis, postgres, work / "hub")
        try:
            return await harness.run(
                hub, shape, lambda h, tenant, sc: kill_node(h, nodes, tenant, sc),
                warm_s=warm_s, after_s=after_s)
        finally:
            await hub.close()
    finally:
        postgres.shutdown()
        redis.stop()
