"""The request path: one socket's round trips and pipelined throughput, rthub against Socket.IO.

    python -m benchmarks.requests            # full run: 3 runs, S2 at 2,000 sends/s
    python -m benchmarks.requests --quick    # small and short, for a sanity check
    python -m benchmarks.requests --only rthub --scenarios idle,pipelined

Idle round trips: one client on an otherwise idle server, --count sequential requests of each
kind, p50 / p99 from the client's send to the reply. rthub: ``time.ping`` (answered by the
gateway alone), ``presence.list`` (an in-memory read of a room entity: a Ray call to its
host and back), ``chat.send`` (a durable message: committed to PostgreSQL, published to
Redis, then acked). Socket.IO 4.8: an acknowledged ``emit`` answered by the server alone, and
one relayed to a room before its ack (held in memory only: nothing is stored).
Pipelined: --burst sends to one room sent back to back on one socket, no reply awaited;
acknowledged messages per second, first send to last ack.
S2 (from benchmarks/fanout.py): --rooms rooms x 4 members, each member 1 msg/s (2,000/s at
500 rooms, 500/s at 125); p50 / p99 end to end and the server's CPU per message, its whole
process tree (rthub: Ray's processes and the embedded PostgreSQL and Redis), with the cores
that CPU kept busy: at 1.00 the server's core is saturated, and CPU per message is then the
core's time spread over the messages, not what one costs.
Every server is pinned to core 0 and the load generator to core 1; figures are medians of
--runs runs; results go to stdout and benchmarks/results/requests.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from benchmarks.fanout import UNBOUNDED, Rthub, SocketIO, Target, scenario_two
from benchmarks.loadgen import Socket
from benchmarks.procs import tree_cpu

log = logging.getLogger("benchmarks.requests")
RESULTS = Path(__file__).parent / "results" / "requests.md"


@dataclass
class Kind:
    """One request kind of a target: what to send for request ``i``."""

    label: str
    frame: Callable[[int], str]


class Requester:
    """A target's request frames and how its replies name the request they answer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.room = f"req-{uuid.uuid4().hex[:8]}"
        self.sock: Socket | None = None
        self.waiting: dict[int, asyncio.Future[float]] = {}

    async def open(self) -> None:
        self.sock = await self.target.member(f"req-{uuid.uuid4().hex[:6]}", self.room, True)
        self.sock.on_text = self._on_text

    def _on_text(self, text: str) -> None:
        ident = self.reply_id(text)
        if ident is not None and (future := self.waiting.pop(ident, None)) is not None:
            future.set_result(time.perf_counter())

    reply: re.Pattern[str]  # the request id in a reply frame (group 1)

    def reply_id(self, text: str) -> int | None:
        match = self.reply.search(text)
        return int(match[1]) if match else None

    def kinds(self) -> dict[str, Kind | None]:
        """``gateway``, ``read`` and ``send`` (None where the target has no such request)."""
        ...

    async def round_trip(self, frame: str, ident: int) -> float:
        assert self.sock is not None
        future = asyncio.get_running_loop().create_future()
        self.waiting[ident] = future
        start = time.perf_counter()
        self.sock.send(frame)
        return (await asyncio.wait_for(future, 30) - start) * 1000

    async def burst(self, kind: Kind, count: int, first: int) -> float:
        """``count`` requests back to back; acknowledged requests per second."""
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        futures = []
        start = time.perf_counter()
        for ident in range(first, first + count):
            future = loop.create_future()
            self.waiting[ident] = future
            futures.append(future)
            self.sock.send(kind.frame(ident))
        done = await asyncio.wait_for(asyncio.gather(*futures), 120)
        return count / (max(done) - start)


class RthubRequester(Requester):
    reply = re.compile(r'"ref":(\d+)')

    def kinds(self) -> dict[str, Kind | None]:
        room = self.room

        def send(i: int) -> str:
            return json.dumps({"type": "chat.send", "id": i, "content": {
                "room": room, "text": "x", "client_msg_id": f"m{i}"}})

        return {
            "gateway": Kind("time.ping", lambda i: json.dumps(
                {"type": "time.ping", "id": i, "content": {"t0": 1}})),
            "read": Kind("presence.list", lambda i: json.dumps(
                {"type": "presence.list", "id": i, "content": {"topic": f"room:{room}"}})),
            "send": Kind("chat.send (durable)", send),
        }


class SocketIORequester(Requester):
    reply = re.compile(r"^43(\d+)\[")  # an ack packet: 43<id>[...]

    def kinds(self) -> dict[str, Kind | None]:
        room = self.room
        return {
            "gateway": Kind("emit with ack", lambda i: f'42{i}["ask",{{"t0":1}}]'),
            "read": None,
            "send": Kind("emit to a room with ack (in memory)", lambda i: (
                f'42{i}["send",{{"room":"{room}","payload":"x"}}]')),
        }


@dataclass
class Run:
    """One run's figures for one target."""

    idle: dict[str, tuple[float, float]] = field(default_factory=dict)  # kind -> p50, p99
    pipelined: float = float("nan")
    s2: dict[int, S2] = field(default_factory=dict)  # by sends/s


@dataclass
class S2:
    p50: float
    p99: float
    lost: int
    cpu_us: float  # server CPU per message sent
    cores: float  # server CPU over the step's length: 1.0 is the whole core (saturated)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def quiet(target: Target, within_s: float = 120, idle: float = 0.05) -> None:
    """Until the server is idle (under ``idle`` of a core for a whole second): what an earlier
    scenario left (S2's 2,000 sockets closing, their sessions recorded) must not be timed."""
    assert target.proc is not None
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = tree_cpu(target.proc.pid, target.data_dir)
        await asyncio.sleep(1.0)
        if tree_cpu(target.proc.pid, target.data_dir) - before < idle:
            return
    log.warning("%s still busy after %.0f s; timing anyway", target.name, within_s)


async def one_run(target: Target, requester: Requester, args: argparse.Namespace, run: int
                  ) -> Run:
    result = Run()
    ident = run * 1_000_000
    await quiet(target)
    if "idle" in args.scenarios:
        for name, kind in requester.kinds().items():
            if kind is None:
                continue
            for _ in range(20):  # warm-up: connections, caches, the entity's activation
                ident += 1
                await requester.round_trip(kind.frame(ident), ident)
            times = []
            for _ in range(args.count):
                ident += 1
                times.append(await requester.round_trip(kind.frame(ident), ident))
            result.idle[name] = (pct(times, 0.5), pct(times, 0.99))
            log.info("%s %s: p50 %.2f p99 %.2f ms", target.name, kind.label, *result.idle[name])
    if "pipelined" in args.scenarios:
        await quiet(target)
        send = requester.kinds()["send"]
        assert send is not None
        result.pipelined = await requester.burst(send, args.burst, ident + 1)
        log.info("%s pipelined: %.0f acked/s", target.name, result.pipelined)
    for rooms in args.rooms if "s2" in args.scenarios else ():
        await quiet(target)
        step = await scenario_two(target, rooms, args.step_s)
        s2 = result.s2[rooms * 4] = S2(
            step.pct(0.5), step.pct(0.99), step.expected - step.delivered,
            step.cpu_s / step.sent * 1e6 if step.sent else float("nan"),
            step.cpu_s / args.step_s)
        log.info("%s S2 at %d/s: p50 %.1f p99 %.1f ms, lost %d, %.0f µs CPU/message, "
                 "%.2f cores", target.name, rooms * 4, s2.p50, s2.p99, s2.lost, s2.cpu_us,
                 s2.cores)
    return result


async def run(args: argparse.Namespace) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {}
    for cls, requester_cls in ((Rthub, RthubRequester), (SocketIO, SocketIORequester)):
        if args.only and not any(word in cls.key for word in args.only.split(",")):
            continue
        target = cls()
        target.start()
        try:
            requester = requester_cls(target)
            await requester.open()
            results[target.name] = [await one_run(target, requester, args, i)
                                    for i in range(args.runs)]
        finally:
            target.stop()
    return results


def render(results: dict[str, list[Run]], args: argparse.Namespace) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def idle(runs: list[Run], kind: str) -> str:
        found = [r.idle[kind] for r in runs if kind in r.idle]
        if not found:
            return "-"
        return f"{med([p50 for p50, _ in found]):.2f} / {med([p99 for _, p99 in found]):.2f}"

    sio = results.get(SocketIO.name)
    sio_rate = med([r.pipelined for r in sio]) if sio else float("nan")
    lines = [
        f"`python -m benchmarks.requests{' --quick' if args.quick else ''}"
        f"{f' --only {args.only!r}' if args.only else ''}"
        f"{''.join(f' --hub-env {kv}' for kv in args.hub_env)}` — {time.strftime('%Y-%m-%d')}, "
        f"servers on core 0, load generator on core 1, median of {args.runs} runs",
        "",
        f"Idle round trips: {args.count} sequential requests of each kind on one socket, p50 / "
        "p99 ms from send to reply, on a server left idle first. rthub: gateway only = "
        "`time.ping`; entity read = `presence.list` (a Ray call to the room's host); durable "
        "send = `chat.send` (committed to PostgreSQL before the ack). Socket.IO 4.8: an `emit` "
        "acknowledged by the server alone; send = an `emit` relayed to a room, then acked "
        f"(memory only). Pipelined: {args.burst:,} sends to one room back to back on one "
        "socket, acknowledged messages per second.",
        "",
        "| server | gateway only p50 / p99 ms | entity read p50 / p99 ms "
        "| send p50 / p99 ms | one socket pipelined, acked msgs/s | vs Socket.IO |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        rate = med([r.pipelined for r in runs])
        lines.append(f"| {name} | {idle(runs, 'gateway')} | {idle(runs, 'read')} "
                     f"| {idle(runs, 'send')} | {rate:,.0f} | {rate / sio_rate:.2f} |")
    rates = sorted({rate for runs in results.values() for r in runs for rate in r.s2})
    if not rates:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "S2: rooms of 4 members, each member 1 msg/s, every message to its 3 room-mates and "
        "back to the sender; end-to-end p50 / p99; CPU: the server's whole process tree "
        "(rthub: Ray, PostgreSQL and Redis included) over the messages sent; cores busy: that "
        "CPU over the step (1.00 is the whole of the server's core: saturated).",
        "",
        "| server | sends/s | p50 / p99 ms | lost | CPU per message | cores busy "
        "| CPU vs Socket.IO |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for rate in rates:
            found = [r.s2[rate] for r in runs if rate in r.s2]
            if not found:
                continue
            sio_cpu = med([r.s2[rate].cpu_us for r in sio if rate in r.s2]) if sio else 0
            cpu = med([f.cpu_us for f in found])
            lines.append(
                f"| {name} | {rate:,} | {med([f.p50 for f in found]):.1f} / "
                f"{med([f.p99 for f in found]):.1f} | {max(f.lost for f in found)} "
                f"| {cpu:,.0f} µs | {med([f.cores for f in found]):.2f} "
                f"| {cpu / sio_cpu if sio_cpu else float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--count", type=int, help="sequential requests per kind (300)")
    parser.add_argument("--burst", type=int, help="pipelined sends on one socket (2000)")
    parser.add_argument("--rooms", help="S2 rooms of 4, comma-separated: one step each "
                        "(500,125: 2,000 and 500 sends/s)")
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--only", help="comma-separated: rthub, socketio")
    parser.add_argument("--replicas", type=int, default=1,
                        help="gateway replicas of rthub (default 1)")
    parser.add_argument("--hub-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for rthub's run (repeatable), e.g. "
                        "RTHUB_HOST_CALLS_IN_FLIGHT=8")
    parser.add_argument("--scenarios", default="idle,pipelined,s2",
                        help="comma-separated: which of idle, pipelined, s2 to run")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.count = args.count or (100 if args.quick else 300)
    args.burst = args.burst or (500 if args.quick else 2000)
    args.rooms = [int(n) for n in (args.rooms or ("100" if args.quick else "500,125")
                                   ).split(",")]
    args.step_s = args.step_s or (3.0 if args.quick else 8.0)
    args.scenarios = set(args.scenarios.split(","))
    Rthub.replicas = args.replicas
    # the request path, not admission control (benchmarks/overload.py measures that): the
    # 2,000-send burst from one socket would otherwise be refused in part
    Rthub.extra_env = {**Rthub.extra_env, **UNBOUNDED,
                       **dict(kv.split("=", 1) for kv in args.hub_env)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.sched_setaffinity(0, {1})
    uvloop.install()
    table = render(asyncio.run(run(args)), args)
    if not (args.quick or args.only or args.hub_env):  # the reference run only
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
