"""A throwaway Redis Cluster on loopback: a dev and test tool, never used by the hub itself.

The tests of the cluster path (``tests/fanout/test_redis_cluster.py``) and the fan-out
benchmark (``benchmarks/fanout.py --redis-cluster``) start one from the machine's
``redis-server`` (7 or newer: sharded pub/sub), with no persistence, in a folder of their own:

    with LocalCluster(folder) as cluster:
        url = cluster.url          # redis://127.0.0.1:<first port>/0

Each master gets a free port P whose cluster-bus port P + 10000 is free too.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger(__name__)

CANDIDATES = ("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")


def redis_server(minimum: int = 7) -> tuple[str | None, str]:
    """The path of a ``redis-server`` at least ``minimum`` (major), or None and why not."""
    found = []
    for name in CANDIDATES:
        path = shutil.which(name)
        if path is None or path in found:
            continue
        found.append(path)
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        match = re.search(r"v=(\d+)\.", out)
        if match and int(match[1]) >= minimum:
            return path, ""
    if not found:
        return None, "no redis-server on PATH or in /usr/bin, /usr/local/bin"
    return None, f"redis-server older than {minimum} ({', '.join(found)}): no sharded pub/sub"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports P with P and P + 10000 (the cluster bus) both free."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 29_999)
        if port not in ports and _free(port) and _free(port + 10_000):
            ports.append(port)
    return ports


class LocalCluster:
    """``masters`` redis-server processes joined into one cluster (no replicas)."""

    def __init__(self, folder: Path, masters: int = 3, server: str | None = None,
                 cluster: bool = True, prefix: Sequence[str] = ()) -> None:
        """``cluster=False``: one plain server on the same terms (a baseline to compare
        with); ``prefix``: what to run the servers under (``taskset -c 0``)."""
        self.folder = Path(folder)
        self.masters = masters if cluster else 1
        self.server = server or redis_server()[0] or "redis-server"
        self.cluster = cluster
        self.prefix = list(prefix)
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs.values()]

    def start(self, within_s: float = 30) -> LocalCluster:
        """Start the servers, create the cluster, return once every node says it is ok."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = free_ports(self.masters)
        try:
            for port in self.ports:
                self.start_node(port)
            deadline = time.monotonic() + within_s
            for port in self.ports:
                self._wait(port, deadline, lambda node: node.ping())
            if not self.cluster:
                return self
            cli = shutil.which("redis-cli") or str(Path(self.server).with_name("redis-cli"))
            subprocess.run([cli, "--cluster", "create",
                            *(f"127.0.0.1:{port}" for port in self.ports),
                            "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=within_s)
            self.wait_ok(max(deadline - time.monotonic(), 1))
        except BaseException:
            self.stop()
            raise
        log.info("local Redis Cluster on ports %s", self.ports)
        return self

    def start_node(self, port: int) -> None:
        """(Re)start the node of ``port`` (it keeps its cluster config file)."""
        node_dir = self.folder / str(port)
        node_dir.mkdir(exist_ok=True)
        out = (node_dir / "server.log").open("ab")
        clustered = ["--cluster-enabled", "yes", "--cluster-config-file",
                     str(node_dir / "nodes.conf"), "--cluster-node-timeout", "2000"]
        self.procs[port] = subprocess.Popen(
            [*self.prefix, self.server, "--port", str(port), "--bind", "127.0.0.1",
             *(clustered if self.cluster else []), "--save", "", "--appendonly", "no",
             "--dir", str(node_dir)],
            stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def stop_node(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for port in list(self.procs):
            self.stop_node(port)

    def restart_node(self, port: int, within_s: float = 30) -> None:
        """Stop node ``port`` and start it again on the same port (no persistence: its keys
        are gone; a cluster node keeps its identity and slots from its cluster config file),
        then wait for it (and the cluster) to be ok."""
        self.stop_node(port)
        self.start_node(port)
        self.wait_ok(within_s)

    def wait_ok(self, within_s: float = 30) -> None:
        """Until every node answers and says the cluster is ok."""
        deadline = time.monotonic() + within_s
        for port in self.ports:
            self._wait(port, deadline, self._ok)

    def owner(self, slot: int) -> int:
        """The port of the master serving ``slot``."""
        with contextlib.closing(self.node(self.ports[0])) as node:
            for start, end, master, *_ in node.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(f"slot {slot} is not served")

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate ``slot`` and its keys to node ``to_port``, the way ``redis-cli --cluster
        reshard`` does (IMPORTING / MIGRATING, MIGRATE, then SETSLOT NODE everywhere)."""
        source = self.owner(slot)
        if source == to_port:
            return
        nodes = {port: self.node(port) for port in self.ports}
        try:
            ids = {port: node.execute_command("CLUSTER", "MYID").decode()
                   for port, node in nodes.items()}
            nodes[to_port].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
            nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                          ids[to_port])
            while keys := nodes[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                nodes[source].execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000,
                                              "KEYS", *keys)
            for port in sorted(self.ports, key=lambda p: (p != to_port, p != source)):
                nodes[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
        finally:
            for node in nodes.values():
                node.close()

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (close it when done)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def pause(self, port: int) -> None:
        """SIGSTOP the node: its sockets stay open and nothing answers (a stalled server)."""
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def _ok(self, node: redis.Redis) -> bool:
        if not self.cluster:
            return bool(node.ping())
        info = node.execute_command("CLUSTER", "INFO").decode()
        return "cluster_state:ok" in info and f"cluster_known_nodes:{self.masters}" in info

    def _wait(self, port: int, deadline: float, ready) -> None:
        """Poll node ``port`` until ``ready(client)`` is true (errors count as not yet)."""
        with contextlib.closing(self.node(port)) as node:
            while True:
                proc = self.procs.get(port)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"redis-server on {port} exited with {proc.returncode}; "
                                       f"see {self.folder / str(port) / 'server.log'}")
                with contextlib.suppress(redis.RedisError):
                    if ready(node):
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {port} not ready in time")
                time.sleep(0.05)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
