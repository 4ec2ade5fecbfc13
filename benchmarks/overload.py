"""Overload: S2 at 1x, 2x and 3x of the hub's capacity; admission control against Socket.IO.

    python -m benchmarks.overload                    # full run: 3 runs of 1x, 2x, 3x
    python -m benchmarks.overload --quick            # one short run
    python -m benchmarks.overload --find-capacity    # the ramp that sets --capacity

S2's load (benchmarks/fanout.py): --rooms rooms x 4 members, every member sends to its room at
the same rate, spread evenly; each message goes to the room's 4 members (the sender too). Here
every send carries an id, so each is counted admitted (``ack``) or shed (``error
unavailable``, with ``retry_after_ms``) and timed to its reply: admitted p99 is send -> ack
(for rthub: committed to PostgreSQL, published), shed p99 is send -> the refusal. Goodput =
admitted sends per second; ``delivered`` checks that every admitted send reached its 4
members (within a 5 s grace after the step). --capacity is the hub's (sends/s) measured on
this machine with --find-capacity: rising rates with admission control off, the highest it
serves in full (every send acked and delivered) with an ack p99 under 500 ms; none stays
under 50 ms here (results/overload-capacity.md). Socket.IO 4.8 gets the same sends as
acknowledged emits (a memory relay: it never sheds), and the hub runs again with admission
control off (what it buys). Servers on core 0, load generator on core 1; medians of --runs
runs; results to stdout and benchmarks/results/overload.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from benchmarks.fanout import Rthub, SocketIO, Target, connect_all
from benchmarks.loadgen import Socket

log = logging.getLogger("benchmarks.overload")
RESULTS = Path(__file__).parent / "results" / "overload.md"
CAPACITY_RESULTS = RESULTS.with_name("overload-capacity.md")
CAPACITY = 1000  # sends/s: --find-capacity on this machine (see the results file)
SENDERS = {"RTHUB_CHAT_RATE": "1000", "RTHUB_CHAT_BURST": "1000"}  # no per-user rate limit
NO_ADMISSION = {"RTHUB_QUEUE_TARGET_MS": "60000", "RTHUB_HOST_QUEUE_LIMIT": "1000000"}
_REF = re.compile(r'"ref":(\d+)')
_SIO_ACK = re.compile(r"^43(\d+)\[")
_TEXT = re.compile(r'"text":"(\d+)"')


class RthubUnguarded(Rthub):
    """The same hub with admission control off: what it buys, in the same run."""

    name = "rthub, admission control off"
    key = "rthub-off"

    def start(self) -> None:
        self.extra_env = {**Rthub.extra_env, **NO_ADMISSION}
        super().start()


@dataclass
class Step:
    """One load level: every send's fate and timing."""

    rate: float
    seconds: float
    sent: int = 0
    admitted_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    retry_after_ms: list[int] = field(default_factory=list)
    delivered: int = 0
    delivery_ms: list[float] = field(default_factory=list)  # send -> a member's receipt
    other_errors: int = 0
    started: dict[int, float] = field(default_factory=dict)  # id -> send time (perf_counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def answered(self) -> int:
        return len(self.admitted_ms) + len(self.shed_ms) + self.other_errors

    @property
    def goodput(self) -> float:
        return len(self.admitted_ms) / self.seconds

    def settled(self) -> bool:
        return self.answered >= self.sent and self.delivered >= 4 * len(self.admitted_ms)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class Load:
    """Sends with ids over S2's sockets and sorts the replies into the current step."""

    def __init__(self, target: Target, rthub: bool) -> None:
        self.target, self.rthub = target, rthub
        self.step: Step | None = None
        self.next_id = 1

    def frame(self, ident: int, room: str) -> str:
        stamp = str(time.time_ns())
        if self.rthub:
            return json.dumps({"type": "chat.send", "id": ident, "content": {
                "room": room, "text": stamp, "client_msg_id": uuid.uuid4().hex[:16]}})
        return f'42{ident}["send",{{"room":"{room}","payload":"{stamp}"}}]'

    def on_text(self, text: str) -> None:
        step = self.step
        if step is None:
            return
        if self.rthub:
            if '"chat.message"' in text:
                step.delivered += 1
                if (stamp := _TEXT.search(text)) is not None:
                    step.delivery_ms.append((time.time_ns() - int(stamp[1])) / 1e6)
                return
            match = _REF.search(text)
        else:
            if text.startswith('42["msg","'):
                step.delivered += 1
                step.delivery_ms.append((time.time_ns() - int(text[10:-2])) / 1e6)
                return
            match = _SIO_ACK.match(text)
        if match is None or (start := step.started.pop(int(match[1]), None)) is None:
            return
        elapsed = (time.perf_counter() - start) * 1000
        if not self.rthub or '"type":"ack"' in text:
            step.admitted_ms.append(elapsed)
        elif '"unavailable"' in text and "retry_after_ms" in text:
            step.shed_ms.append(elapsed)
            step.retry_after_ms.append(int(text.split('"retry_after_ms":', 1)[1].split(
                "}", 1)[0].split(",", 1)[0]))
        else:
            step.other_errors += 1
            if step.other_errors <= 3:
                log.warning("unexpected reply: %s", text[:200])
        if step.settled():
            step.done.set()

    async def run(self, senders: list[tuple[Socket, str]], rate: float, seconds: float,
                  grace_s: float = 5.0) -> Step:
        step = self.step = Step(rate, seconds)
        index, start = 0, time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            while step.sent < due:
                sock, room = senders[index % len(senders)]
                index += 1
                ident, self.next_id = self.next_id, self.next_id + 1
                step.started[ident] = time.perf_counter()
                sock.send(self.frame(ident, room))
                step.sent += 1
            await asyncio.sleep(min(0.005, max(0.002, 1 / rate)))
        if not step.settled():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(step.done.wait(), grace_s)
        self.step = None
        return step


async def level(target: Target, rooms: int, rates: list[float], seconds: float,
                rthub: bool) -> list[Step]:
    """Connect S2's sockets once, warm up, then one step per rate."""
    tag = uuid.uuid4().hex[:4]
    pairs = [(f"o{tag}r{r}u{m}", f"ov-{tag}-{r}", m == 0)
             for r in range(rooms) for m in range(4)]
    sockets = await connect_all(target, pairs)
    load = Load(target, rthub)
    for sock in sockets:
        sock.on_text = load.on_text
    senders = [(sock, room) for sock, (_, room, _) in zip(sockets, pairs, strict=True)]
    await load.run(senders, rates[0] / 2, 2.0)  # warm-up: activations, caches
    steps = []
    for rate in rates:
        step = await load.run(senders, rate, seconds)
        steps.append(step)
        log.info("%s %.0f sends/s: %.0f admitted/s (p99 %.1f ms), %d shed (p99 %.1f ms), "
                 "delivery p99 %.1f ms, %d/%d delivered, %d unanswered", target.name, rate,
                 step.goodput, pct(step.admitted_ms, 0.99), len(step.shed_ms),
                 pct(step.shed_ms, 0.99), pct(step.delivery_ms, 0.99),
                 step.delivered, 4 * len(step.admitted_ms), step.sent - step.answered)
    for sock in sockets:
        sock.close()
    return steps


def fmt(value: float, present: bool) -> str:
    return f"{value:,.1f}" if present else "-"


def render(results: dict[str, list[list[Step]]], args: argparse.Namespace) -> str:
    med = statistics.median
    lines = [
        f"`python -m benchmarks.overload{' --quick' if args.quick else ''}"
        f"{' --find-capacity' if args.find_capacity else ''}"
        f"{''.join(f' --hub-env {kv}' for kv in args.hub_env)}` — {time.strftime('%Y-%m-%d')}"
        f", servers on core 0, load generator on core 1, median of {args.runs} runs",
        "",
        f"S2 load: {args.rooms} rooms x 4 members, {args.step_s:.0f} s per level. "
        + ("Ramp with admission control off: the capacity is the highest rate served in "
           "full (every send acked and delivered) with an ack p99 under 500 ms."
           if args.find_capacity else
           f"Capacity {args.capacity:,} sends/s (--find-capacity on this machine)."),
        "",
        "| server | offered sends/s | goodput (admitted/s) | admitted p50 / p99 ms "
        "| delivery p99 ms | shed | shed reply p99 ms | retry_after_ms p50 "
        "| admitted, not delivered in 5 s | unanswered in 5 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for i in range(len(runs[0])):
            steps = [run[i] for run in runs]
            shed = [len(s.shed_ms) for s in steps]
            lines.append((
                f"| {name} | {steps[0].rate:,.0f} | {med([s.goodput for s in steps]):,.0f} "
                f"| {med([pct(s.admitted_ms, 0.5) for s in steps]):.1f} / "
                f"{med([pct(s.admitted_ms, 0.99) for s in steps]):.1f} "
                f"| {med([pct(s.delivery_ms, 0.99) for s in steps]):.1f} "
                f"| {med(shed):,.0f} ({med(shed) / steps[0].sent:.0%}) "
                f"| {fmt(med([pct(s.shed_ms, 0.99) for s in steps]), any(shed))} "
                f"| {fmt(med([pct(s.retry_after_ms, 0.5) for s in steps]), any(shed))} "
                f"| {max(4 * len(s.admitted_ms) - s.delivered for s in steps)} "
                f"| {max(s.sent - s.answered for s in steps)} |").replace("nan", "-"))
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, list[list[Step]]]:
    if args.find_capacity:
        rates = [float(r) for r in args.ramp.split(",")]
    else:
        rates = [args.capacity * m for m in (1, 2, 3)]
    results: dict[str, list[list[Step]]] = {}
    for cls in (RthubUnguarded,) if args.find_capacity else (Rthub, RthubUnguarded, SocketIO):
        if args.only and cls.key not in args.only.split(","):
            continue
        target = cls()
        target.start()
        try:
            results[target.name] = [
                await level(target, args.rooms, rates, args.step_s, cls is not SocketIO)
                for _ in range(args.runs)]
        finally:
            target.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--rooms", type=int, default=250, help="S2 rooms of 4 (250)")
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--capacity", type=int, default=CAPACITY,
                        help=f"the hub's capacity in sends/s ({CAPACITY:,}, measured)")
    parser.add_argument("--find-capacity", action="store_true",
                        help="ramp --ramp rates with admission control off instead")
    parser.add_argument("--ramp", default="250,500,750,1000,1250,1500,2000")
    parser.add_argument("--only", help="comma-separated: rthub, rthub-off, socketio")
    parser.add_argument("--replicas", type=int, default=1, help="gateway replicas (1)")
    parser.add_argument("--hub-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for rthub's run (repeatable)")
    parser.add_argument("--out", type=Path, help="results file (results/overload.md, or "
                        "results/overload-capacity.md with --find-capacity)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the load generator's core; servers run on core 0
    args.runs = args.runs or (1 if args.quick else 3)
    args.out = args.out or (CAPACITY_RESULTS if args.find_capacity else RESULTS)
    args.step_s = args.step_s or (4.0 if args.quick else 10.0)
    env = dict(kv.split("=", 1) for kv in args.hub_env)
    Rthub.replicas = args.replicas
    Rthub.extra_env = {**Rthub.extra_env, **SENDERS, **env}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = uvloop.run(run(args))
    text = render(results, args)
    sys.stdout.write(text)
    if not args.quick:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
