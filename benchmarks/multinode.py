"""The hub on a three-node Ray cluster on one machine, and S1 on it.

    python -m benchmarks.multinode --quick --runs 3 --replicas 1,2,4   # S1 vs one node

``LocalNodes`` is a ``ray.cluster_utils.Cluster``: a head and two worker nodes, each a raylet
of its own (``num_cpus`` 2, a custom resource ``rthub_node_<name>`` naming it), all on this
machine. The hub runs on it as ``rthub up`` does against ``RAY_ADDRESS`` (its launcher,
``cluster.local.LocalHub``): hosts reserve ``RTHUB_HOST_CPUS`` (1 here, so Ray's scheduler
puts one on each node; at 0 every host lands on the node that creates it) and
``spread_gateway`` redeploys the gateway with ``max_replicas_per_node`` (Serve's default
``SPREAD`` alone put two of three replicas on one node). Every replica binds the same
WebSocket port with ``SO_REUSEPORT``: the nodes share one network namespace here, so the
kernel spreads new connections over the replicas of every node, which is what an L4
balancer in front of real nodes does. Which node a socket landed on is read from the
welcome's ``gateway`` and the replica's process (``replicas``, ``node_of_pid``: the raylet
it descends from).

For other suites (chaos): ``kill_node`` SIGKILLs a worker node's raylet and every process
under it (``raylet_only`` for the raylet alone: its workers then live on), ``remove`` is
``Cluster.remove_node``, ``add_worker`` brings a node back.

The benchmark: S1 of ``benchmarks.fanout`` (one room, one publisher at rising rates) with
1, 2 and 4 gateway replicas, on one node and on the three nodes, in one run. On a 2-core
machine three nodes add processes (two more raylets, Serve proxies) on the same cores: the
figure is the overhead of the layout, not its scale.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("benchmarks.multinode")
HERE = Path(__file__).parent
RESULTS = HERE / "results" / "multinode.md"
NODE_CPUS = 2
REPLICA_TITLE = "ServeReplica:"  # Ray titles a Serve replica's process ray::ServeReplica:app:dep
# The GCS declares a node dead after this many missed health checks of this period: a killed
# raylet's actors are restarted elsewhere within seconds instead of Ray's default ~30 s.
HEALTH_CHECK = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5,
                "health_check_timeout_ms": 2000}


@dataclass
class NodeInfo:
    """One node of the local cluster: its name (``head``, ``worker1`` ...) and Ray's node."""

    name: str
    node: Any  # ray._private.node.Node

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def raylet_pid(self) -> int | None:
        procs = self.node.all_processes.get("raylet") or []
        return procs[0].process.pid if procs else None


class LocalNodes:
    """A head and ``workers`` worker nodes on this machine (``ray.cluster_utils.Cluster``).

    Ray's flags for the hub (``cluster.ingress.ray_env``) must be in this process's
    environment before ``start``: every raylet, and so every worker, inherits them."""

    def __init__(self, workers: int = 2, cpus: int = NODE_CPUS) -> None:
        self.workers, self.cpus = workers, cpus
        self.cluster: Any = None
        self.nodes: list[NodeInfo] = []
        self._added = 0

    def start(self) -> LocalNodes:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, connect=False, head_node_args={
            "num_cpus": self.cpus, "resources": {"rthub_node_head": 1},
            "include_dashboard": False, "_system_config": HEALTH_CHECK})
        self.nodes = [NodeInfo("head", self.cluster.head_node)]
        for _ in range(self.workers):
            self.add_worker(wait=False)
        self.cluster.wait_for_nodes()
        return self

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_worker(self, wait: bool = True) -> NodeInfo:
        """A new worker node (``worker1``, ``worker2`` ...: names are never reused)."""
        self._added += 1
        name = f"worker{self._added}"
        node = self.cluster.add_node(num_cpus=self.cpus, resources={f"rthub_node_{name}": 1})
        info = NodeInfo(name, node)
        self.nodes.append(info)
        if wait:
            self.cluster.wait_for_nodes()
        return info

    def worker(self, name: str) -> NodeInfo:
        return next(n for n in self.nodes if n.name == name)

    def kill_node(self, info: NodeInfo, raylet_only: bool = False) -> list[int]:
        """SIGKILL a node as a machine that dies: its raylet and every process under it (its
        workers: hosts, replicas, Serve's proxy), with no goodbye to the GCS, which notices
        by its health checks. Returns the pids killed.

        ``raylet_only``: the raylet alone. Its workers then live on (Ray 2.60's workers do
        not exit when their raylet dies; seen here for 20 s and more) and keep serving the
        callers that hold their address while the GCS restarts their actors elsewhere."""
        pid = info.raylet_pid
        if pid is None:
            raise RuntimeError(f"{info.name} has no raylet")
        victims = [pid]
        if not raylet_only:
            with contextlib.suppress(psutil.Error):
                victims += [p.pid for p in psutil.Process(pid).children(recursive=True)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self._forget(info)
        return victims

    def remove(self, info: NodeInfo, graceful: bool = False) -> None:
        """``Cluster.remove_node``, then what it leaves: it stops the raylet (told to stop
        and unregister first when ``graceful``) and the node's own daemons, but not the
        workers under the raylet, which are killed here as the node's other processes."""
        pid = info.raylet_pid
        workers = []
        with contextlib.suppress(psutil.Error):
            workers = psutil.Process(pid).children(recursive=True) if pid else []
        self.cluster.remove_node(info.node, allow_graceful=graceful)
        for proc in workers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._forget(info)

    def _forget(self, info: NodeInfo) -> None:
        self.nodes.remove(info)
        with contextlib.suppress(ValueError):
            self.cluster.worker_nodes.remove(info.node)

    def node_of_pid(self, pid: int) -> str | None:
        """The name of the node whose raylet ``pid`` descends from (Ray workers are started
        by their node's raylet), or None."""
        raylets = {n.raylet_pid: n.name for n in self.nodes}
        with contextlib.suppress(psutil.Error):
            proc: psutil.Process | None = psutil.Process(pid)
            while proc is not None:
                if proc.pid in raylets:
                    return raylets[proc.pid]
                proc = proc.parent()
        return None

    def replica_processes(self, app: str = "") -> list[tuple[str, psutil.Process]]:
        """(node name, process) of every Serve replica running on the nodes (of Serve app
        ``app`` only, when given): processes titled ``ray::ServeReplica:<app>:...`` under a
        node's raylet."""
        title = f"{REPLICA_TITLE}{app}:" if app else REPLICA_TITLE
        found = []
        for info in list(self.nodes):
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(info.raylet_pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if title in " ".join(proc.cmdline()):
                            found.append((info.name, proc))
        return found

    def host_placement(self, settings: Any) -> dict[str, dict[str, Any]]:
        """{host name: {pid, node}} of the hub's hashed hosts, each asked for its own pid
        (a host that does not answer within 60 s raises)."""
        import ray

        names = [f"rthub-host-{i}" for i in range(settings.hosts)]
        handles = [ray.get_actor(name, namespace=settings.namespace) for name in names]
        stats = ray.get([h.stats.remote() for h in handles], timeout=60)
        return {name: {"pid": s["pid"], "node": self.node_of_pid(s["pid"])}
                for name, s in zip(names, stats, strict=True)}

    def replicas(self, operator_ports: range) -> dict[str, dict[str, Any]]:
        """Every live gateway replica on the nodes: {gateway id: {node, pid, operator}}.

        The operator port a replica listens on (in ``operator_ports``) answers ``/healthz``
        with its gateway id, the id every welcome carries."""
        found: dict[str, dict[str, Any]] = {}
        for node, proc in self.replica_processes():
            with contextlib.suppress(psutil.Error):
                for conn in proc.net_connections("tcp"):
                    port = conn.laddr.port
                    if conn.status != psutil.CONN_LISTEN or port not in operator_ports:
                        continue
                    who = _get_json(f"http://127.0.0.1:{port}/healthz")
                    if isinstance(who, dict) and "gateway" in who:
                        found[who["gateway"]] = {"node": node, "pid": proc.pid,
                                                 "operator": port}
        return found

    def alive_node_ids(self) -> set[str]:
        """Node ids the GCS counts alive (asked through a connected driver)."""
        import ray

        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def shutdown(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None


def _get_json(url: str) -> dict[str, Any] | None:
    """The JSON body at ``url``, or None: a replica's other listening ports (Ray's gRPC
    among them) may fall in the operator range and answer something that is not HTTP/1."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None


def poll(check, timeout_s: float, every_s: float = 0.25, what: str = "condition") -> Any:
    """Call ``check()`` until it returns something truthy (Ray's and the kernel's state
    changes have no event to await from outside); raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what} not reached in {timeout_s:.0f} s")




def spread_gateway(settings: Any, per_node: int, app_name: str = "rthub") -> None:
    """Redeploy the hub's gateway with at most ``per_node`` replicas a node (Serve's
    ``max_replicas_per_node``, which ``cluster/hub.serve.yaml`` sets to 1 for the same
    reason): Serve's default SPREAD alone put two of three replicas on one node here.
    ``serve.app.build`` returns a bound application; its deployment is reached through
    ``Application._bound_deployment`` (what Serve's own ``build_app`` reads), since the
    hub has no public hook for deployment options besides a Serve config."""
    from ray import serve as rayserve

    rayserve.run(spread_app(settings, per_node), name=app_name, route_prefix="/")


def spread_app(settings: Any, per_node: int) -> Any:
    """``serve.app.build(settings)`` with at most ``per_node`` gateway replicas a node."""
    from serve.app import build

    deployment = build(settings)._bound_deployment.options(max_replicas_per_node=per_node)
    return deployment.bind(settings)


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class Layout:
    """One hub measured: where it runs, its replicas, its S1 figures (median runs)."""

    name: str
    replicas: int
    per_node: dict[str, int]
    sustained: Any  # benchmarks.fanout.Step
    peak: Any
    runs: list[float]  # sustained deliveries/s of each run
    peaks: list[float]  # peak deliveries/s of each run


def in_process_target(replicas: int, nodes: LocalNodes | None) -> Any:
    """fanout's rthub target, with the hub started from this process (``LocalHub``, what
    ``rthub up`` runs) so that its gateway can be spread one Serve option further than
    ``rthub up`` goes (``spread_gateway``). Everything it starts (Ray's processes, or the
    cluster's workers; the embedded servers) runs on core 0, the load generator on core 1."""
    import math
    import shutil
    import tempfile
    import uuid

    from benchmarks import fanout
    from benchmarks.hub import LOAD_ENV
    from cluster.ingress import free_port
    from cluster.local import LocalHub
    from rthub import config

    class InProcessRthub(fanout.Rthub):
        def start(self) -> None:
            self.data_dir = tempfile.mkdtemp(prefix="rthub-multinode-")
            self.secret = uuid.uuid4().hex * 2
            env = {**os.environ, **LOAD_ENV, **fanout.UNBOUNDED, "RTHUB_DATA_DIR": self.data_dir,
                   "RTHUB_JWT_SECRET": self.secret, "RTHUB_HOSTS": "3",
                   "RTHUB_NAMESPACE": f"mn{uuid.uuid4().hex[:8]}",
                   "RTHUB_GATEWAY_REPLICAS": str(replicas), "RTHUB_INGRESS": "direct",
                   "RTHUB_WS_PORT": str(free_port()), "RTHUB_HTTP_PORT": str(free_port()),
                   "RTHUB_OPERATOR_PORT": str(free_port())}
            if nodes is not None:  # a CPU a host: Ray's scheduler spreads them
                env["RTHUB_HOST_CPUS"] = "1"
                os.environ["RAY_ADDRESS"] = nodes.address
            else:
                os.environ.pop("RAY_ADDRESS", None)
            self.local = LocalHub(config.load(env))
            os.sched_setaffinity(0, {0})  # what it starts inherits the server core
            try:
                settings = self.local.start()
                if nodes is not None:
                    per_node = math.ceil(replicas / len(nodes.nodes))
                    spread_gateway(settings, per_node)
                    poll(lambda: replica_spread(nodes, replicas, per_node), 120, 0.5,
                         f"{replicas} replicas, at most {per_node} a node")
            finally:
                os.sched_setaffinity(0, {1})
            self.port = settings.ws_port

        def stop(self) -> None:
            self.local.stop()
            shutil.rmtree(self.data_dir, ignore_errors=True)

    target = InProcessRthub()
    target.replicas = replicas
    return target


def replica_spread(nodes: LocalNodes, replicas: int, per_node: int, app: str = ""
                   ) -> dict[str, int] | None:
    """Replicas (of ``app``, when given) per node once there are ``replicas``, at most
    ``per_node`` on any node; else None."""
    counts: dict[str, int] = {}
    for node, _ in nodes.replica_processes(app):
        counts[node] = counts.get(node, 0) + 1
    fits = sum(counts.values()) == replicas and max(counts.values(), default=0) <= per_node
    return counts if fits else None


async def measure(name: str, replicas: int, args: argparse.Namespace,
                  nodes: LocalNodes | None = None) -> Layout:
    """``args.runs`` runs of fanout's S1 against one hub with ``replicas`` gateway
    replicas: on ``nodes`` when given (replicas spread), else on a Ray of its own."""
    from benchmarks import fanout

    target = in_process_target(replicas, nodes)
    target.start()
    try:
        per_node = replica_spread(nodes, replicas, replicas) or {} if nodes is not None else {}
        sustained_runs, peak_runs = [], []
        for _ in range(args.runs):
            steps = await fanout.scenario_one(target, args.members, args.step_s)
            sustained_runs.append(max((s for s in steps if s.sustained), default=fanout.NONE,
                                      key=lambda s: s.deliveries_per_s))
            peak_runs.append(max((s for s in steps if s.lossless), default=fanout.NONE,
                                 key=lambda s: s.deliveries_per_s))
    finally:
        target.stop()
    layout = Layout(name, replicas, per_node, fanout.median_step(sustained_runs),
                    fanout.median_step(peak_runs), [s.deliveries_per_s for s in sustained_runs],
                    [s.deliveries_per_s for s in peak_runs])
    log.info("%s, %d replicas %s: S1 sustained %s deliveries/s (runs %s), peak runs %s", name,
             replicas, per_node, f"{layout.sustained.deliveries_per_s:,.0f}", layout.runs,
             layout.peaks)
    return layout


async def run(args: argparse.Namespace) -> str:
    layouts = []
    # one node first, before the three-node cluster exists: its idle raylets would share
    # the server core with the single-node hub
    for replicas in args.replicas:
        layouts.append(await measure("one node", replicas, args))
    os.sched_setaffinity(0, {0})  # the cluster's processes inherit the server core
    nodes = LocalNodes().start()
    os.sched_setaffinity(0, {1})  # the load generator's
    try:
        for replicas in args.replicas:
            layouts.append(await measure("three nodes", replicas, args, nodes))
    finally:
        nodes.shutdown()
    return render(layouts, args)


def _ratio(mine: Any, theirs: Any) -> str:
    return f"{mine.deliveries_per_s / theirs.deliveries_per_s:.2f}" if theirs.sent else "-"


def render(layouts: list[Layout], args: argparse.Namespace) -> str:
    one = {lay.replicas: lay for lay in layouts if lay.name.startswith("one")}
    lines = [
        f"`python -m benchmarks.multinode{' --quick' if args.quick else ''} --runs {args.runs} "
        f"--replicas {','.join(map(str, args.replicas))}` — {time.strftime('%Y-%m-%d')}, "
        f"2 cores, every server process on core 0 and the load generator on core 1, median "
        f"of {args.runs} runs, {args.step_s:g} s per step",
        "",
        f"S1 of `benchmarks.fanout`: 1 room x {args.members:,} members, one publisher at "
        "rising rates; *sustained*: the best step with no loss and p99 < 50 ms, *peak*: the "
        "best with no loss. Three nodes: a `ray.cluster_utils.Cluster` (head + 2 workers, "
        f"{NODE_CPUS} CPUs each, all on this machine) and `rthub up`'s launcher "
        "(`cluster.local.LocalHub`) on it, three hosts reserving a CPU each (one a node), "
        "the gateway redeployed with `max_replicas_per_node` = replicas / 3 rounded up "
        "(`spread_gateway`); one node: the same launcher on a Ray of its own, three hosts. "
        "*vs one node*: against the one-node row with the same replicas.",
        "",
        "| layout | replicas | replicas per node | S1 sustained msgs/s | deliveries/s "
        "| p50 / p99 ms | runs | vs one node | S1 peak deliveries/s | p50 / p99 ms | runs "
        "| vs one node |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for lay in layouts:
        sus, peak = lay.sustained, lay.peak
        base = one.get(lay.replicas)
        compared = base is not None and base is not lay

        per_node = ", ".join(f"{n} {c}" for n, c in sorted(lay.per_node.items())) or "-"
        lines.append(
            f"| {lay.name} | {lay.replicas} | {per_node} "
            f"| {f'{sus.rate:g}' if sus.sent else 'none'} | {sus.deliveries_per_s:,.0f} "
            f"| {sus.pct(0.5):.1f} / {sus.pct(0.99):.1f} "
            f"| {' / '.join(f'{r:,.0f}' for r in lay.runs)} "
            f"| {_ratio(sus, base.sustained) if compared else '-'} "
            f"| {peak.deliveries_per_s:,.0f} | {peak.pct(0.5):.1f} / {peak.pct(0.99):.1f} "
            f"| {' / '.join(f'{r:,.0f}' for r in lay.peaks)} "
            f"| {_ratio(peak, base.peak) if compared else '-'} |")
    lines += ["", "On this 2-core machine every node shares the same core: three nodes add "
              "processes (two more raylets, Serve proxies) and cross-raylet calls, not cores, "
              "so the figure shows the overhead of the layout, not how it scales."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from benchmarks import fanout
    from cluster.ingress import ray_env
    from rthub import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 members, 2 s steps")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", default="1,2,4", help="gateway replica counts")
    parser.add_argument("--members", type=int)
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.members = args.members or (200 if args.quick else 1000)
    args.step_s = args.step_s or (2.0 if args.quick else 4.0)
    args.replicas = [int(n) for n in args.replicas.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # the cluster's raylets (and every worker under them) start from this process
    for name, value in ray_env(config.load({"RTHUB_INGRESS": "direct"})).items():
        os.environ.setdefault(name, value)
    fanout.raise_fd_limit(20_000)
    os.sched_setaffinity(0, {1})
    import uvloop

    uvloop.install()
    table = asyncio.run(run(args))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
