"""Fan-out: rthub's real path against plain ``websockets`` and Socket.IO 4.8, same load.

    python -m benchmarks.fanout            # full run
    python -m benchmarks.fanout --quick    # small and short, for a sanity check
    python -m benchmarks.fanout --only direct --scenarios s2   # one target, one scenario
    python -m benchmarks.fanout --redis-cluster --quick        # S1: one Redis vs a cluster

S1: one room of --members (1,000) members, one publisher at rising rates; each step runs
--step-s seconds; the max sustained rate is the highest with no loss and p99 < 50 ms.
S2: --rooms (500) rooms x 4 members, every member sends 1 msg/s to its room.
Latency is end to end (publisher send -> member receive, one clock: the load generator's).

Every server is pinned to core 0 and the load generator to core 1 (``taskset``); rthub runs
whole, as ``rthub up`` (Ray, hosts, Serve gateway, embedded Postgres and Redis), so its
number includes the room entity, the durable write before the broadcast, Redis and Serve.
Socket.IO is installed from npm into benchmarks/servers by this script. Results:
stdout and benchmarks/results/fanout.md, medians of --runs runs.

--redis-cluster runs rthub only, S1 unless --scenarios says otherwise, twice in one run: with
REDIS_URL naming one redis-server 7 and a three-master Redis Cluster (``fanout.localcluster``,
sharded pub/sub), both on loopback TCP and on the servers' core; results in
benchmarks/results/fanout-redis-cluster.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from benchmarks.hub import HubProcess
from benchmarks.loadgen import Socket
from benchmarks.procs import tree_cpu, tree_rss
from cluster.devcert import self_signed
from cluster.ingress import free_port
from fanout.localcluster import LocalCluster, redis_server
from serve.auth import issue_token

log = logging.getLogger("benchmarks.fanout")
HERE = Path(__file__).parent
RESULTS = HERE / "results" / "fanout.md"
UNBOUNDED = {"RTHUB_HOST_QUEUE_LIMIT": "1000000"}  # admission control's count bound off
RATES = (1, 2, 5, 10, 20, 30, 40, 50, 70, 100, 150, 200, 300, 400, 500, 700, 1000, 1500, 2000)
_DIGITS = re.compile(r'"text":"(\d+)"')


def wait_port(port: int, proc: subprocess.Popen, within_s: float = 60) -> None:
    """Block until the server listens (servers start before any load runs)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {port}")


class Target:
    """A server under test: how to start it, join a room, publish, read a delivery."""

    name = ""
    key = ""  # names the target to S3's client processes
    proc: subprocess.Popen | None = None
    port = 0
    secret = ""
    max_sockets = 15_000  # one server process: the open-files limit (20,000) is per process
    data_dir = ""  # where a server keeps embedded servers of its own (counted in its cost)
    tls: ssl.SSLContext | None = None  # the load generator's, when the server speaks TLS
    idle_clients = True  # S3's client processes can reach it

    def start(self) -> None: ...

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def member(self, user: str, room: str, first: bool) -> Socket: ...

    async def idle(self, user: str) -> Socket:
        """A connected, authenticated socket that joins nothing (S3)."""
        ...

    def publish(self, sock: Socket, room: str, payload: str) -> None: ...

    def payload_of(self, text: str) -> str | None: ...


class Rthub(Target):
    name = "rthub (direct ingress)"
    key = "rthub"
    extra_env: dict[str, str] = {"RTHUB_INGRESS": "direct"}
    replicas = 2  # --replicas: sockets spread over the replicas (the limit is per process)

    @property
    def max_sockets(self) -> int:  # type: ignore[override]
        return 15_000 * self.replicas

    def start(self) -> None:
        self.hub = HubProcess("fanout", {**self.extra_env,
                                         "RTHUB_GATEWAY_REPLICAS": str(self.replicas)})
        self.hub.start()
        self.proc, self.port, self.secret = self.hub.proc, self.hub.port, self.hub.secret
        self.data_dir = self.hub.data_dir

    async def idle(self, user: str) -> Socket:
        token = issue_token(self.secret, user, ttl_s=7200)
        sock = await Socket.open("127.0.0.1", self.port, "/ws",
                                 {"Authorization": f"Bearer {token}"}, self.tls)
        await sock.recv()  # welcome: the session entity knows the socket
        return sock

    async def member(self, user: str, room: str, first: bool) -> Socket:
        token = issue_token(self.secret, user, ttl_s=7200)
        sock = await Socket.open("127.0.0.1", self.port, "/ws",
                                 {"Authorization": f"Bearer {token}"}, self.tls)
        await sock.recv()  # welcome
        kind, content = (("room.create", {"room_id": room, "name": room}) if first
                         else ("room.join", {"room": room}))
        reply = await self._ask(sock, kind, content, 1)
        if '"error"' in reply and "already exists" not in reply:
            raise RuntimeError(reply)
        if '"error"' in reply:  # someone created it first: join
            await self._ask(sock, "room.join", {"room": room}, 2)
        return sock

    @staticmethod
    async def _ask(sock: Socket, kind: str, content: dict, ident: int) -> str:
        """The reply to one request, retried as PROTOCOL.md says while the hub sheds load
        (``unavailable`` with ``retry_after_ms``: a join wave can outrun the hosts)."""
        while True:
            sock.send(json.dumps({"type": kind, "id": ident, "content": content}))
            while f'"ref":{ident}' not in (reply := await sock.recv()):
                pass
            if '"retry_after_ms"' not in reply:
                return reply
            wait_ms = json.loads(reply)["content"]["retry_after_ms"]
            await asyncio.sleep(wait_ms / 1000)

    def publish(self, sock: Socket, room: str, payload: str) -> None:
        sock.send(json.dumps({"type": "chat.send", "content": {
            "room": room, "text": payload, "client_msg_id": uuid.uuid4().hex[:16]}}))

    def payload_of(self, text: str) -> str | None:
        if '"chat.message"' not in text:
            return None
        match = _DIGITS.search(text)
        return match[1] if match else None


class RthubTLS(Rthub):
    """The same hub serving ``wss://`` (a self-signed certificate the run makes): what TLS
    costs, against the plain target in the same run."""

    name = "rthub (direct ingress, TLS)"
    key = "rthub-tls"
    idle_clients = False

    def start(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="rthub-tls-"))
        cert, key, _ = self_signed(folder)
        self.extra_env = {**Rthub.extra_env, "RTHUB_TLS_CERT": cert, "RTHUB_TLS_KEY": key}
        self.tls = ssl.create_default_context(cafile=cert)
        super().start()


class RthubProxy(Rthub):
    name = "rthub (Serve default proxy)"
    key = "rthub-proxy"
    extra_env = {"RTHUB_INGRESS": "proxy"}

    @property
    def max_sockets(self) -> int:  # type: ignore[override]
        return 15_000  # every socket goes through Serve's one proxy process


class RthubOneRedis(Rthub):
    """rthub with REDIS_URL naming one redis-server 7 on loopback TCP: the baseline of
    ``--redis-cluster`` (the default embedded Redis is 6.2 on a Unix socket)."""

    name = "rthub, one Redis 7"
    key = "rthub-redis"
    cluster = False

    def start(self) -> None:
        server, why_not = redis_server(7)
        if server is None:
            raise RuntimeError(f"--redis-cluster needs redis-server >= 7: {why_not}")
        self.redis = LocalCluster(Path(tempfile.mkdtemp(prefix=f"{self.key}-")), server=server,
                                  cluster=self.cluster, prefix=("taskset", "-c", "0")).start()
        # the shared rate limits off on both: their pipelined EVALSHA is refused by redis-py's
        # cluster client, and the comparison is of the fan-out path
        self.extra_env = {**Rthub.extra_env, "REDIS_URL": self.redis.url,
                          "RTHUB_RATE_LIMITS": ""}
        super().start()

    def stop(self) -> None:
        super().stop()
        self.redis.stop()
        shutil.rmtree(self.redis.folder, ignore_errors=True)


class RthubRedisCluster(RthubOneRedis):
    """rthub with REDIS_URL naming a three-master Redis Cluster (sharded pub/sub)."""

    name = "rthub, 3-master Redis Cluster"
    key = "rthub-redis-cluster"
    cluster = True


class PlainWebsockets(Target):
    name = "Python websockets.broadcast"
    key = "websockets"

    def start(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(["taskset", "-c", "0", sys.executable,
                                      str(HERE / "servers" / "ws_broadcast.py"), str(self.port)])
        wait_port(self.port, self.proc)

    async def idle(self, user: str) -> Socket:
        return await Socket.open("127.0.0.1", self.port, "/")

    async def member(self, user: str, room: str, first: bool) -> Socket:
        sock = await Socket.open("127.0.0.1", self.port, "/")
        sock.send(f"join:{room}")
        await sock.recv()
        return sock

    def publish(self, sock: Socket, room: str, payload: str) -> None:
        sock.send(f"pub:{room}:{payload}")

    def payload_of(self, text: str) -> str | None:
        return text if text.isdigit() else None


def npm_install() -> None:
    """Install benchmarks/servers' npm packages when one is missing (node_modules is not in
    git, and a checkout may hold an older set)."""
    servers = HERE / "servers"
    wanted = json.loads((servers / "package.json").read_text())["dependencies"]
    if any(not (servers / "node_modules" / name).exists() for name in wanted):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                       cwd=servers, check=True)


class SocketIO(Target):
    name = "Socket.IO 4.8 (node)"
    key = "socketio"
    server_args: tuple[str, ...] = ()  # socketio_server.js options (e.g. --recovery)

    def start(self) -> None:
        npm_install()
        self.port = free_port()
        self.proc = subprocess.Popen(["taskset", "-c", "0", "node", "socketio_server.js",
                                      str(self.port), *self.server_args], cwd=HERE / "servers")
        wait_port(self.port, self.proc)

    async def idle(self, user: str) -> Socket:
        sock = await Socket.open("127.0.0.1", self.port, "/socket.io/?EIO=4&transport=websocket")
        await sock.recv()  # engine.io open packet
        sock.send("40")
        await sock.recv()  # namespace connect
        return sock

    async def member(self, user: str, room: str, first: bool) -> Socket:
        sock = await Socket.open("127.0.0.1", self.port, "/socket.io/?EIO=4&transport=websocket")
        await sock.recv()  # engine.io open packet
        sock.send("40")
        await sock.recv()  # namespace connect
        sock.send("42" + json.dumps(["join", room]))
        await sock.recv()  # joined
        return sock

    def publish(self, sock: Socket, room: str, payload: str) -> None:
        sock.send("42" + json.dumps(["pub", {"room": room, "payload": payload}]))

    def payload_of(self, text: str) -> str | None:
        if text.startswith('42["msg","'):
            return text[10:-2]
        return None


TARGETS = (Rthub, RthubTLS, RthubProxy, PlainWebsockets, SocketIO)
REDIS_TARGETS = (RthubOneRedis, RthubRedisCluster)  # --redis-cluster


def target_for(key: str, port: int, secret: str) -> Target:
    """A started target as seen from another process (S3's clients): where, and its key."""
    target = next(cls for cls in (*TARGETS, *REDIS_TARGETS) if cls.key == key)()
    target.port, target.secret = port, secret
    return target


@dataclass
class Step:
    rate: float
    sent: int
    delivered: int
    expected: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU the server's process tree used during the step (S2)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    @property
    def sustained(self) -> bool:
        return self.delivered == self.expected and self.pct(0.99) < 50

    @property
    def lossless(self) -> bool:
        """Every delivery arrived, within a second: the server kept up, if not fast."""
        return self.delivered == self.expected and self.pct(0.99) < 1000


def listen(target: Target, sockets: list[Socket], step: Step) -> None:
    def on_text(text: str) -> None:
        payload = target.payload_of(text)
        if payload is not None:
            step.delivered += 1
            step.latencies_ms.append((time.time_ns() - int(payload)) / 1e6)
            if step.delivered == step.expected:
                step.complete.set()

    for sock in sockets:
        sock.on_text = on_text


async def paced(rate: float, seconds: float, send) -> int:
    """Call ``send()`` ``rate`` times a second for ``seconds``; return how many were sent."""
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            send()
            sent += 1
        await asyncio.sleep(min(0.005, max(0.002, 1 / rate)))  # uvloop: ms timers
    return sent


async def settle(step: Step, grace_s: float = 3.0) -> None:
    """Wait for the deliveries still in flight (at most ``grace_s``): what is missing is lost."""
    if step.delivered >= step.expected:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(step.complete.wait(), grace_s)


async def connect_all(target: Target, pairs: list[tuple[str, str, bool]]) -> list[Socket]:
    """Connect in waves of 50, rooms' creators first; sockets come back in ``pairs`` order."""
    order = sorted(range(len(pairs)), key=lambda i: not pairs[i][2])
    connected: dict[int, Socket] = {}
    for start in range(0, len(order), 50):
        wave = order[start:start + 50]
        socks = await asyncio.gather(*(target.member(*pairs[i]) for i in wave))
        connected.update(zip(wave, socks, strict=True))
    return [connected[i] for i in range(len(pairs))]


async def run_step(target: Target, sockets: list[Socket], publisher: Socket, room: str,
                   rate: float, seconds: float) -> Step:
    step = Step(rate, 0, 0, 0, seconds)
    listen(target, sockets, step)
    step.sent = await paced(rate, seconds, lambda: target.publish(
        publisher, room, str(time.time_ns())))
    step.expected = step.sent * len(sockets)
    await settle(step)
    return step


async def scenario_one(target: Target, members: int, step_s: float) -> list[Step]:
    """Rising rates after a short warm-up, until the server saturates (a step loses
    deliveries or its p99 passes 1 s). The results are the best step with p99 < 50 ms
    (sustained) and the best step with no loss (peak)."""
    room = f"s1-{uuid.uuid4().hex[:6]}"
    publisher = await target.member("publisher", room, first=True)
    sockets = await connect_all(target, [(f"m{i}", room, False) for i in range(members)])
    publisher.on_text = lambda text: None
    await run_step(target, sockets, publisher, room, 5, 1.0)  # warm-up, not counted
    steps = []
    for rate in RATES:
        step = await run_step(target, sockets, publisher, room, rate, step_s)
        steps.append(step)
        log.info("%s S1 rate %s: %d/%d delivered, p50 %.1f p99 %.1f ms", target.name, rate,
                 step.delivered, step.expected, step.pct(0.5), step.pct(0.99))
        if not step.lossless:
            break
    for sock in (publisher, *sockets):
        sock.close()
    return steps


async def scenario_two(target: Target, rooms: int, step_s: float) -> Step:
    pairs = [(f"r{r}u{m}", f"s2-{r}", m == 0) for r in range(rooms) for m in range(4)]
    sockets = await connect_all(target, pairs)
    step = Step(rooms * 4, 0, 0, 0, step_s)
    listen(target, sockets, step)

    senders = [(sock, room) for sock, (_, room, _) in zip(sockets, pairs, strict=True)]
    index = 0

    def send_next() -> None:
        nonlocal index
        sock, room = senders[index % len(senders)]
        index += 1
        target.publish(sock, room, str(time.time_ns()))

    assert target.proc is not None
    cpu_before = tree_cpu(target.proc.pid, target.data_dir)
    step.sent = await paced(len(senders), step_s, send_next)
    step.expected = step.sent * 4
    await settle(step)
    step.cpu_s = tree_cpu(target.proc.pid, target.data_dir) - cpu_before
    for sock in sockets:
        sock.close()
    return step


@dataclass
class Idle:
    sockets: int
    held: int
    connect_per_s: float
    kb_per_socket: float
    skipped: str = ""


SOCKETS_PER_CLIENT_PROCESS = 8000


async def scenario_three(target: Target, count: int) -> Idle:
    """``count`` idle sockets from several client processes (the open-files limit is per
    process): how fast they connect, what each costs the server, and that all stay."""
    assert target.proc is not None
    if not target.idle_clients:
        return Idle(count, 0, 0, 0, "not run: S3's client processes speak plain WebSockets")
    if count > target.max_sockets:
        return Idle(count, 0, 0, 0, f"not run: over {target.max_sockets:,} sockets per server "
                    "process under a 20,000 open-files limit")
    await asyncio.sleep(2)  # let the server's own start-up settle before the baseline
    before = tree_rss(target.proc.pid, target.data_dir)
    shares = [min(SOCKETS_PER_CLIENT_PROCESS, count - first)
              for first in range(0, count, SOCKETS_PER_CLIENT_PROCESS)]
    start = time.monotonic()
    clients = [await asyncio.create_subprocess_exec(
        "taskset", "-c", "1", sys.executable, "-m", "benchmarks.idle_clients", target.key,
        str(target.port), target.secret, str(share), str(i * SOCKETS_PER_CLIENT_PROCESS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        for i, share in enumerate(shares)]

    async def ask(client: asyncio.subprocess.Process, line: str | None) -> str:
        if line is not None:
            client.stdin.write(f"{line}\n".encode())
            await client.stdin.drain()
        return (await client.stdout.readline()).decode().strip()

    try:
        reports = await asyncio.gather(*(ask(client, None) for client in clients))
        elapsed = time.monotonic() - start
        failed = [report for report in reports if not report.startswith("connected")]
        if failed:
            log.warning("%s S3 %d: %s", target.name, count, failed[0])
            return Idle(count, 0, 0, 0, f"failed: {failed[0][:80]}")
        await asyncio.sleep(2)  # nothing to await: the server's allocations are not observable
        checks = await asyncio.gather(*(ask(client, "check") for client in clients))
        held = sum(int(check.split()[1]) for check in checks)
        per_socket = (tree_rss(target.proc.pid, target.data_dir) - before) / count / 1024
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.stdin.write(b"quit\n")
                await client.stdin.drain()
        await asyncio.gather(*(client.wait() for client in clients))
    log.info("%s S3 %d sockets: %d held, %.0f connects/s, %.1f KB each", target.name, count,
             held, count / elapsed, per_socket)
    return Idle(count, held, count / elapsed, per_socket)


NONE = Step(0, 0, 0, 0, 1)  # no step qualified


@dataclass
class Result:
    sustained: Step
    peak: Step
    s2: Step
    idle: list[Idle]


def median_step(steps: list[Step]) -> Step:
    """The median run's step (NONE when the scenario did not run)."""
    if not steps:
        return NONE
    return sorted(steps, key=lambda s: s.deliveries_per_s)[len(steps) // 2]


async def run(args: argparse.Namespace) -> str:
    results = {}
    for cls in REDIS_TARGETS if args.redis_cluster else TARGETS:
        if args.only and not any(word in cls.name for word in args.only.split(",")):
            continue
        target = cls()
        target.start()
        try:
            sustained_runs, peak_runs, s2_runs = [], [], []
            for _ in range(args.runs):
                if "s1" in args.scenarios:
                    s1 = await scenario_one(target, args.members, args.step_s)
                    sustained_runs.append(max((s for s in s1 if s.sustained), default=NONE,
                                              key=lambda s: s.deliveries_per_s))
                    peak_runs.append(max((s for s in s1 if s.lossless), default=NONE,
                                         key=lambda s: s.deliveries_per_s))
                if "s2" in args.scenarios:
                    s2_runs.append(await scenario_two(target, args.rooms, args.step_s))
            idle = []
            for count in (args.idle if "s3" in args.scenarios else ()):
                # a fresh server for each count: memory freed by earlier sockets would be
                # reused and hide what a socket costs
                if sustained_runs or s2_runs or idle:
                    target.stop()
                    target.start()
                idle.append(await scenario_three(target, count))
            results[target.name] = Result(median_step(sustained_runs), median_step(peak_runs),
                                          median_step(s2_runs), idle)
        finally:
            target.stop()
    return render(results, args)


def render(results: dict[str, Result], args: argparse.Namespace) -> str:
    def ratio(step: Step, other: Step | None) -> str:
        if other is None or not other.deliveries_per_s:
            return "-"
        return f"{step.deliveries_per_s / other.deliveries_per_s:.2f}"

    sio, plain = results.get(SocketIO.name), results.get(PlainWebsockets.name)
    lines = [
        f"`python -m benchmarks.fanout{' --quick' if args.quick else ''}"
        f"{' --redis-cluster' if args.redis_cluster else ''}"
        f"{f' --only {args.only!r}' if args.only else ''}` — "
        f"{time.strftime('%Y-%m-%d')}, servers on core 0, load generator on core 1, "
        f"median of {args.runs} runs, {args.step_s:g} s per step",
        "",
        f"S1: 1 room x {args.members:,} members, one publisher at rising rates. *Sustained*: "
        "the best step with no loss and p99 < 50 ms; *peak*: the best step with no loss "
        "(p99 < 1 s). S2: {:,} rooms x 4 members, each member 1 msg/s; server CPU per "
        "message: the CPU time of the server's whole process tree during the step over the "
        "messages sent.".format(args.rooms),
        "",
        "| server | S1 sustained msgs/s | deliveries/s | p50 / p99 ms | vs Socket.IO "
        "| vs websockets | S1 peak deliveries/s | p50 / p99 ms | vs Socket.IO | vs websockets "
        "| S2 deliveries/s | S2 p50 / p99 ms | S2 loss | S2 server CPU per message |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        sus, peak, s2 = r.sustained, r.peak, r.s2
        lines.append(
            f"| {name} | {f'{sus.rate:g}' if sus is not NONE else 'none'} "
            f"| {sus.deliveries_per_s:,.0f} | {sus.pct(0.5):.1f} / {sus.pct(0.99):.1f} "
            f"| {ratio(sus, sio and sio.sustained)} | {ratio(sus, plain and plain.sustained)} "
            f"| {peak.deliveries_per_s:,.0f} | {peak.pct(0.5):.1f} / {peak.pct(0.99):.1f} "
            f"| {ratio(peak, sio and sio.peak)} | {ratio(peak, plain and plain.peak)} "
            f"| {s2.deliveries_per_s:,.0f} | {s2.pct(0.5):.1f} / {s2.pct(0.99):.1f} "
            f"| {s2.expected - s2.delivered} "
            f"| {s2.cpu_s / s2.sent * 1e6 if s2.sent else float('nan'):,.0f} µs |")
    one, many = results.get(RthubOneRedis.name), results.get(RthubRedisCluster.name)
    if one is not None and many is not None:
        lines += ["", f"Cluster vs one Redis: S1 sustained {ratio(many.sustained, one.sustained)}"
                  f", peak {ratio(many.peak, one.peak)} (deliveries/s)."]
    if not any(r.idle for r in results.values()):  # S3 not run
        return "\n".join(lines) + "\n"
    lines += ["", "S3: idle sockets (connected and authenticated, nothing joined), from several "
              "client processes; memory is the resident growth of the server's whole process "
              "tree, each count on a freshly started server.", "",
              "| server | " + " | ".join(f"{n:,} sockets: held / connects/s / KB each"
                                         for n in args.idle) + " |",
              "|---|" + "---:|" * len(args.idle)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(
            i.skipped or f"{i.held:,} / {i.connect_per_s:,.0f} / {i.kb_per_socket:.1f}"
            for i in r.idle) + " |")
    return "\n".join(lines) + "\n"


def raise_fd_limit(wanted: int) -> None:
    """Open-files limit for S3's sockets (root may raise the hard limit; others get theirs)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, hard), max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < wanted:
            log.warning("open-files limit %d: S3 may not reach its socket counts", hard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--members", type=int)
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--idle", help="S3 socket counts, comma-separated (5000,20000)")
    parser.add_argument("--only", help="comma-separated words: run the targets named so")
    parser.add_argument("--replicas", type=int, default=2,
                        help="gateway replicas of rthub (default 2; all on the server core)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"where the table goes (default {RESULTS.relative_to(HERE.parent)})")
    parser.add_argument("--scenarios",
                        help="comma-separated: which of s1, s2, s3 to run (default all; s1 "
                             "with --redis-cluster)")
    parser.add_argument("--redis-cluster", action="store_true",
                        help="rthub only, with one Redis 7 and then a 3-master Redis Cluster")
    args = parser.parse_args()
    args.scenarios = args.scenarios or ("s1" if args.redis_cluster else "s1,s2,s3")
    if args.redis_cluster and args.out == RESULTS:
        args.out = RESULTS.with_name("fanout-redis-cluster.md")
    args.members = args.members or (200 if args.quick else 1000)
    args.rooms = args.rooms or (100 if args.quick else 500)
    args.runs = args.runs or (1 if args.quick else 3)
    args.scenarios = set(args.scenarios.split(","))
    args.step_s = args.step_s or (2.0 if args.quick else 4.0)
    args.idle = [int(n) for n in (args.idle or ("1000" if args.quick else "5000,20000")
                                  ).split(",")]
    Rthub.replicas = args.replicas
    # fan-out, not admission control (benchmarks/overload.py measures that): a publisher's
    # burst would otherwise be refused in part past half RTHUB_HOST_QUEUE_LIMIT
    Rthub.extra_env = {**Rthub.extra_env, **UNBOUNDED}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.sched_setaffinity(0, {1})
    raise_fd_limit(max(args.idle) * 3 + 10_000)  # the servers, started from here, inherit it
    uvloop.install()
    table = asyncio.run(run(args))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
