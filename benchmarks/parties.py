"""Listening parties: how closely devices with skewed clocks agree on the playback position,
and how fast a control reaches every device of a big party, rthub against Socket.IO 4.8.

    python -m benchmarks.parties            # 100 devices, 2,000 listeners, 3 runs
    python -m benchmarks.parties --quick    # 20 devices, 200 listeners, 10 controls, 1 run

Sync: --devices (100) devices, each its own user and socket, join one party. Each device's
clock is off by a true offset drawn uniformly from +-5,000 ms, and its link adds 0-50 ms of
random delay to each direction of every ``time.ping`` exchange (a sleep after taking ``t0``
before the ping is sent, and one after the pong arrives before ``t3`` is taken, every time in
the device's own skewed clock). Each device takes 8 samples into ``client.clock``'s
``ClockEstimator`` (the median offset of the 4 lowest-delay samples). The host then sends
``play``; when its ``party.state`` arrives each device works out where it believes the track
is (position + its server-time estimate - at_server_ms) and where it truly is (the same with
its true offset): the sync error, which is |estimated offset - true offset|. In the same run
and on the same samples, two naive estimators: the first exchange's offset alone, and the
mean offset of all 8. Each run is a fresh party with fresh devices and offsets.

Control fan-out: --listeners (2,000) sockets, one user each, joined to one party with
``party.join``; the host sends --controls (100) seeks 0.5 s apart per run. For every control
the load generator notes the host's send and each listener's receipt of the matching
``party.state`` (one clock, the load generator's): per-delivery latency, and control-to-all
(send -> the last listener has it). Comparison: Socket.IO 4.8
(``benchmarks/servers/socketio_server.js``), the same number of sockets in one room, the same
number of broadcasts, 0.5 s apart, of a JSON object shaped and sized like the ``party.state``
frame rthub sends. Listeners connect once per server; the --runs runs are successive bursts
of controls on the same sockets, rthub's and Socket.IO's interleaved.

Servers are launched as ``benchmarks/fanout.py`` launches them (rthub whole, as ``rthub up``
with direct ingress) and pinned to core 0, the load generator (this process) to core 1.
Figures are medians over --runs runs. Results: stdout (logging) and
benchmarks/results/parties.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop

from benchmarks.fanout import UNBOUNDED, Rthub, SocketIO, raise_fd_limit
from benchmarks.heading import run_heading
from benchmarks.loadgen import Socket
from client.clock import ClockEstimator

log = logging.getLogger("benchmarks.parties")
HERE = Path(__file__).parent
RESULTS = HERE / "results" / "parties.md"
SAMPLES = 8
OFFSET_MS = 5000
JITTER_S = 0.05
TARGET_MS = 20  # the target: every device within 20 ms on loopback
SPACING_S = 0.5
GRACE_S = 10.0
_POSITION = re.compile(r'"position_ms":(\d+)')


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def busy(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total else float("nan")


async def ask(sock: Socket, ident: int, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """Send one request on a socket whose frames queue up; its ack's content (frames in
    between, such as other members joining, are dropped)."""
    sock.send(json.dumps({"type": kind, "id": ident, "content": content}))
    while True:
        frame = json.loads(await sock.recv(60))
        if frame.get("ref") == ident:
            if frame["type"] != "ack":
                raise RuntimeError(f"{kind}: {frame}")
            return frame["content"]


class Hub(Rthub):
    """fanout.py's rthub (``rthub up``, direct ingress, core 0), with its data directory
    removed afterwards and its stderr drained (a full pipe would stall it)."""

    name = "rthub (direct ingress)"

    def start(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="rthub-parties-")
        self.extra_env = {**Rthub.extra_env, **UNBOUNDED, "RTHUB_DATA_DIR": self.data_dir,
                          "RTHUB_NAMESPACE": f"party{os.getpid()}"}
        super().start()
        assert self.proc is not None
        assert self.proc.stderr is not None
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        asyncio.get_running_loop().run_in_executor(None, self.tail.extend, self.proc.stderr)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    async def party(self, host: str, party: str) -> Socket:
        """The host's socket of a new party with one track queued and playing."""
        sock = await self.idle(host)
        await ask(sock, 1, "party.create", {"party_id": party, "name": party,
                                            "mode": "host_only"})
        await ask(sock, 2, "party.queue", {"party": party, "op": "add", "track": "track-0",
                                           "item_id": "q0"})
        return sock

    async def listener(self, user: str, party: str) -> Socket:
        sock = await self.idle(user)
        await ask(sock, 1, "party.join", {"party": party})
        return sock


# -- sync -------------------------------------------------------------------------------------
class Device:
    """A party member whose clock is ``skew_ms`` ahead of the true one and whose link adds
    0-50 ms of random delay to each direction of every exchange."""

    def __init__(self, sock: Socket, skew_ms: float, rng: random.Random) -> None:
        self.sock, self.skew_ms, self.rng = sock, skew_ms, rng
        self.clock = ClockEstimator()
        self.offsets: list[float] = []  # every sample's offset, in order

    def now(self) -> float:
        return time.time() * 1000 + self.skew_ms

    async def frame(self, match: Any) -> dict[str, Any]:
        while not match(frame := json.loads(await self.sock.recv(60))):
            pass
        return frame

    async def sync(self) -> None:
        for ident in range(100, 100 + SAMPLES):
            t0 = self.now()
            await asyncio.sleep(self.rng.uniform(0, JITTER_S))  # uplink delay
            self.sock.send(json.dumps({"type": "time.ping", "id": ident, "content": {"t0": t0}}))
            pong = (await self.frame(lambda f, i=ident: f.get("ref") == i))
            if pong["type"] != "time.pong":
                raise RuntimeError(f"time.ping: {pong}")
            await asyncio.sleep(self.rng.uniform(0, JITTER_S))  # downlink delay
            c = pong["content"]
            self.offsets.append(self.clock.add(c["t0"], c["t1"], c["t2"], self.now())[1])

    async def errors(self, topic: str) -> dict[str, float]:
        """On the play's ``party.state``: each estimator's distance, in ms, between where
        the device believes the track is now and where it is."""
        state = (await self.frame(lambda f: f.get("type") == "party.state"
                                  and f.get("topic") == topic))["content"]
        local = self.now()
        truth = state["position_ms"] + (local - self.skew_ms - state["at_server_ms"])
        estimates = {"filter": self.clock.offset_ms, "first": self.offsets[0],
                     "mean": statistics.fmean(self.offsets)}
        return {name: abs(state["position_ms"] + (local + offset - state["at_server_ms"])
                          - truth) for name, offset in estimates.items()}


ESTIMATORS = {
    "filter": "`ClockEstimator` (median of the 4 lowest-delay of 8 samples)",
    "first": "naive: the first exchange alone",
    "mean": "naive: mean of the 8 samples",
}


@dataclass
class SyncRun:
    devices: int
    got_state: int
    errors: dict[str, list[float]]  # estimator -> every device's error, ms
    bound_p50: float  # the filter's error bound (half the best round trip), ms
    delay_p50: float  # median round trip of a sample, ms (jitter included)
    first_delay_p50: float  # ... of the first sample, taken right after the join
    first_signed: float  # mean signed error of the first sample: > 0 when the ping waited


async def sync_run(hub: Hub, count: int, run: int, seed: int) -> SyncRun:
    party = f"sync{run}"
    topic = f"party:{party}"
    host = await hub.party("host", party)
    rng = random.Random(seed * 1000 + run)
    socks = []
    for start in range(0, count, 50):
        socks += await asyncio.gather(*(hub.listener(f"device{i}", party)
                                        for i in range(start, min(start + 50, count))))
    devices = [Device(sock, rng.uniform(-OFFSET_MS, OFFSET_MS), random.Random(rng.random()))
               for sock in socks]
    await asyncio.gather(*(d.sync() for d in devices))
    await ask(host, 3, "party.control", {"party": party, "action": "play"})
    results = await asyncio.gather(*(asyncio.wait_for(d.errors(topic), 30) for d in devices),
                                   return_exceptions=True)
    for sock in (host, *socks):
        sock.close()
    got = [r for r in results if isinstance(r, dict)]
    errors = {name: [r[name] for r in got] for name in ESTIMATORS}
    delays = [d for dev in devices for d, _ in dev.clock.samples]
    outcome = SyncRun(count, len(got), errors,
                      statistics.median(d.clock.error_bound_ms for d in devices),
                      statistics.median(delays),
                      statistics.median(d.clock.samples[0][0] for d in devices),
                      statistics.fmean(d.offsets[0] + d.skew_ms for d in devices))
    log.info("sync run %d: %d/%d devices got the state; error p50/p99/max ms: %s; "
             "median round trip %.1f ms (first exchange %.1f ms, its signed error %+.1f ms)",
             run + 1, len(got), count, ", ".join(
                 f"{name} {pct(e, 0.5):.1f}/{pct(e, 0.99):.1f}/{max(e, default=0):.1f}"
                 for name, e in errors.items()), outcome.delay_p50, outcome.first_delay_p50,
             outcome.first_signed)
    return outcome


# -- control fan-out --------------------------------------------------------------------------
@dataclass
class Burst:
    """One run of controls: when each was sent, and each listener's receipts."""

    listeners: int
    sent: dict[int, float] = field(default_factory=dict)  # position_ms -> send time (s)
    acked: dict[int, float] = field(default_factory=dict)
    got: dict[int, list[float]] = field(default_factory=dict)  # position_ms -> receipts
    received: int = 0
    expected: int = -1  # set once every control has been sent
    frame_bytes: int = 0
    core0: float = 0.0
    core1: float = 0.0
    loop_lag_ms: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_text(self, text: str) -> None:
        now = time.perf_counter()
        if "party.state" not in text and not text.startswith('42["msg"'):
            return
        match = _POSITION.search(text)
        receipts = self.got.get(int(match[1])) if match else None
        if receipts is not None:
            receipts.append(now)
            self.frame_bytes = len(text.encode())
            self.received += 1
            if self.received == self.expected:
                self.done.set()

    @property
    def deliveries_ms(self) -> list[float]:
        return [(t - self.sent[k]) * 1000 for k, got in self.got.items() for t in got]

    @property
    def to_all_ms(self) -> list[float]:
        """Per control: send -> the last listener got it (inf when one never did)."""
        return [(max(got) - self.sent[k]) * 1000 if len(got) == self.listeners else math.inf
                for k, got in self.got.items()]

    @property
    def lost(self) -> int:
        return sum(self.listeners - len(got) for got in self.got.values())

    @property
    def ack_ms(self) -> list[float]:
        return [(t - self.sent[k]) * 1000 for k, t in self.acked.items()]


class Fanout:
    """A server with a host and ``listeners`` sockets in one party (room)."""

    name = ""
    target: Any

    async def setup(self, listeners: int) -> None: ...

    def control(self, position: int, burst: Burst) -> None: ...

    async def burst(self, controls: int, first_position: int) -> Burst:
        burst = Burst(len(self.socks))
        for sock in self.socks:
            sock.on_text = burst.on_text
        cores = psutil.cpu_times(percpu=True)
        probe = asyncio.get_running_loop().create_task(self.probe(burst))
        for n in range(controls):
            position = first_position + n * 1000
            burst.got[position] = []
            burst.sent[position] = time.perf_counter()
            self.control(position, burst)
            if n < controls - 1:
                await asyncio.sleep(SPACING_S)
        burst.expected = controls * burst.listeners
        if burst.received == burst.expected:
            burst.done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(burst.done.wait(), GRACE_S)
        after = psutil.cpu_times(percpu=True)
        probe.cancel()
        burst.core0, burst.core1 = busy(cores[0], after[0]), busy(cores[1], after[1])
        return burst

    @staticmethod
    async def probe(burst: Burst) -> None:
        """The load generator's worst late wake-up (a stall of this process, or of core 1)."""
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            burst.loop_lag_ms = max(burst.loop_lag_ms, (time.perf_counter() - start) * 1000 - 5)

    def close(self) -> None:
        for sock in (self.host, *self.socks):
            sock.close()


class RthubFanout(Fanout):
    name = Hub.name

    def __init__(self, hub: Hub) -> None:
        self.target = hub
        self.ids = itertools.count(10)

    async def setup(self, listeners: int) -> None:
        self.party = "big"
        self.host = await self.target.party("host", self.party)
        await ask(self.host, 3, "party.control", {"party": self.party, "action": "play"})
        self.host.on_text = self.on_host
        self.socks: list[Socket] = []
        start = time.monotonic()
        for wave in range(0, listeners, 50):
            self.socks += await asyncio.gather(*(self.join(f"listener{i}") for i in range(
                wave, min(wave + 50, listeners))))
            if wave % 500 == 0:
                log.info("rthub: %d listeners joined (%.0f s)", len(self.socks),
                         time.monotonic() - start)
        self.setup_s = time.monotonic() - start
        await asyncio.sleep(2)  # the last joins' party.joined broadcasts drain

    async def join(self, user: str) -> Socket:
        sock = await self.target.listener(user, self.party)
        sock.on_text = lambda text: None  # later members' party.joined: not measured
        return sock

    def on_host(self, text: str) -> None:
        if '"type":"ack"' in text and (match := _POSITION.search(text)):
            burst = self.current
            position = int(match[1])
            if position in burst.sent:
                burst.acked[position] = time.perf_counter()

    def control(self, position: int, burst: Burst) -> None:
        self.current = burst
        self.host.send(json.dumps({"type": "party.control", "id": next(self.ids), "content": {
            "party": self.party, "action": "seek", "position_ms": position}}))


class SocketIOFanout(Fanout):
    name = SocketIO.name

    def __init__(self, target: SocketIO) -> None:
        self.target = target

    async def setup(self, listeners: int) -> None:
        self.room = "big"
        self.host = await self.target.member("host", self.room, True)
        self.host.on_text = lambda text: None
        self.socks: list[Socket] = []
        start = time.monotonic()
        for wave in range(0, listeners, 50):
            self.socks += await asyncio.gather(*(self.target.member(
                f"listener{i}", self.room, False) for i in range(
                    wave, min(wave + 50, listeners))))
        self.setup_s = time.monotonic() - start

    def control(self, position: int, burst: Burst) -> None:
        """The payload is what rthub sends each listener: its whole ``party.state`` frame."""
        now = int(time.time() * 1000)
        self.seq = getattr(self, "seq", 3) + 1
        frame = {"type": "party.state", "topic": "party:big", "content": {
            "party": "big", "track": "track-0", "item_id": "q0", "position_ms": position,
            "playing": True, "volume": 80, "at_server_ms": now + 150, "queue_version": 2,
            "host": "host", "mode": "host_only", "by": "host", "action": "seek"},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "seq": self.seq}
        self.host.send("42" + json.dumps(["pub", {"room": self.room, "payload": frame}],
                                         separators=(",", ":")))


@dataclass
class FanoutResult:
    name: str
    listeners: int
    setup_s: float
    bursts: list[Burst]


async def fanouts(fans: list[Fanout], args: argparse.Namespace) -> list[FanoutResult]:
    """Every server's listeners connected at once, then each run's bursts interleaved (the
    order alternating run by run), so that load from elsewhere on the machine hits both."""
    for fan in fans:
        await fan.setup(args.listeners)
        log.info("%s: %d listeners connected and joined in %.1f s", fan.name, args.listeners,
                 fan.setup_s)
        await fan.burst(2, 1_000)  # warm-up, not counted
    bursts: dict[str, list[Burst]] = {fan.name: [] for fan in fans}
    for run in range(args.runs):
        for fan in fans if run % 2 == 0 else fans[::-1]:
            await asyncio.sleep(1)
            burst = await fan.burst(args.controls, 100_000 * (run + 1))
            bursts[fan.name].append(burst)
            log.info("%s run %d: %d controls x %d listeners, delivery p50 %.1f p99 %.1f ms, "
                     "control-to-all p50 %.1f p90 %.1f p99 %.1f ms (slowest %s), lost %d, "
                     "core 0 %.0f%% core 1 %.0f%%, load generator stalled up to %.0f ms",
                     fan.name, run + 1, args.controls, burst.listeners,
                     pct(burst.deliveries_ms, 0.5), pct(burst.deliveries_ms, 0.99),
                     pct(burst.to_all_ms, 0.5), pct(burst.to_all_ms, 0.9),
                     pct(burst.to_all_ms, 0.99),
                     ", ".join(f"{t:.0f}" for t in sorted(burst.to_all_ms)[-4:]), burst.lost,
                     burst.core0 * 100, burst.core1 * 100, burst.loop_lag_ms)
    for fan in fans:
        fan.close()
    return [FanoutResult(fan.name, args.listeners, fan.setup_s, bursts[fan.name])
            for fan in fans]


# -- the run ----------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> tuple[list[SyncRun], list[FanoutResult]]:
    """Both servers up side by side on core 0 (an idle one costs the other little): the
    sync runs on rthub, then the fan-out runs of both, interleaved."""
    hub, sio = Hub(), SocketIO()
    try:
        hub.start()
        sio.start()
        syncs = [await sync_run(hub, args.devices, run, args.seed) for run in range(args.runs)]
        return syncs, await fanouts([RthubFanout(hub), SocketIOFanout(sio)], args)
    finally:
        sio.stop()
        hub.stop()


def render(syncs: list[SyncRun], fanouts: list[FanoutResult], args: argparse.Namespace,
           load: tuple[float, float]) -> str:
    runs = f"median of {args.runs} run{'s' * (args.runs > 1)}"
    lines = [run_heading("benchmarks.parties", args.runs, load), ""]
    if syncs:
        med = statistics.median
        filt = med([pct(s.errors["filter"], 0.99) for s in syncs])
        lines += [
            f"### Sync error: {args.devices} devices, clocks off by up to +-{OFFSET_MS:,} ms, "
            f"0-{JITTER_S * 1000:.0f} ms random delay each way",
            "",
            f"Each device: {SAMPLES} `time.ping` exchanges, then the host's `play`; error = "
            "|where the device believes the track is - where it is| (= |estimated - true "
            f"clock offset|), ms. Target: every device within {TARGET_MS} ms. All three rows "
            "use the same exchanges.",
            "",
            "| offset estimator | p50 ms | p90 ms | p99 ms | max ms "
            f"| devices within {TARGET_MS} ms | p99 vs `ClockEstimator` |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, label in ESTIMATORS.items():
            p99 = med([pct(s.errors[name], 0.99) for s in syncs])
            within = med([sum(e <= TARGET_MS for e in s.errors[name]) / len(s.errors[name])
                          for s in syncs])
            lines.append(
                f"| {label} | {med([pct(s.errors[name], 0.5) for s in syncs]):.1f} "
                f"| {med([pct(s.errors[name], 0.9) for s in syncs]):.1f} | {p99:.1f} "
                f"| {med([max(s.errors[name]) for s in syncs]):.1f} | {within:.0%} "
                f"| {p99 / filt:.2f}x |")
        lines += [
            "",
            f"Devices that got the `party.state`: {sum(s.got_state for s in syncs)} of "
            f"{sum(s.devices for s in syncs)}. Median round trip of a sample "
            f"{med([s.delay_p50 for s in syncs]):.1f} ms (the jitter's 50 ms expected plus the "
            f"hub); median error bound the filter claims (half its best round trip) "
            f"{med([s.bound_p50 for s in syncs]):.1f} ms. The first exchange, taken right after "
            "the joins: median round trip "
            f"{med([s.first_delay_p50 for s in syncs]):.1f} ms, mean signed error "
            f"{med([s.first_signed for s in syncs]):+.1f} ms (positive: the ping took longer "
            "on its way in than the pong on its way out).",
            "",
            "| run | devices | " + " | ".join(f"{n} p50 / p99 / max ms" for n in ESTIMATORS)
            + " |",
            "|---:|---:|" + "---:|" * len(ESTIMATORS),
        ]
        for n, s in enumerate(syncs, 1):
            lines.append(f"| {n} | {s.got_state}/{s.devices} | " + " | ".join(
                f"{pct(e, 0.5):.1f} / {pct(e, 0.99):.1f} / {max(e):.1f}"
                for e in s.errors.values()) + " |")
        lines.append("")
    if fanouts:
        def med_of(result: FanoutResult, fn: Any) -> float:
            return statistics.median(fn(b) for b in result.bursts)

        def to_all(result: FanoutResult, q: float) -> float:
            return med_of(result, lambda b: pct(b.to_all_ms, q))

        sio = next((r for r in fanouts if r.name == SocketIO.name), None)
        lines += [
            f"### Control fan-out: {args.listeners:,} listeners in one party, "
            f"{args.controls} controls {SPACING_S:g} s apart per run",
            "",
            "Latency from the host's send to each listener's receipt (one clock). "
            "*Control-to-all*: per control, until the last listener had it; percentiles over "
            f"the run's {args.controls} controls (nearest rank), then the median of the runs.",
            "",
            "| server | delivery p50 / p99 ms | control-to-all p50 ms | p90 ms | p99 ms "
            "| max ms | vs Socket.IO p50 / p99 | deliveries lost | frame bytes "
            "| host ack p50 / p99 ms | core 0 / core 1 busy | connect + join s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in fanouts:
            ratio = (f"{to_all(r, 0.5) / to_all(sio, 0.5):.2f}x / "
                     f"{to_all(r, 0.99) / to_all(sio, 0.99):.2f}x" if sio else "-")
            acks = (f"{med_of(r, lambda b: pct(b.ack_ms, 0.5)):.1f} / "
                    f"{med_of(r, lambda b: pct(b.ack_ms, 0.99)):.1f}" if r.bursts[0].acked
                    else "-")
            lines.append(
                f"| {r.name} | {med_of(r, lambda b: pct(b.deliveries_ms, 0.5)):.1f} / "
                f"{med_of(r, lambda b: pct(b.deliveries_ms, 0.99)):.1f} "
                f"| {to_all(r, 0.5):.1f} | {to_all(r, 0.9):.1f} | {to_all(r, 0.99):.1f} "
                f"| {med_of(r, lambda b: max(b.to_all_ms)):.1f} | {ratio} "
                f"| {sum(b.lost for b in r.bursts)} of "
                f"{sum(len(b.got) * b.listeners for b in r.bursts):,} "
                f"| {r.bursts[0].frame_bytes} | {acks} "
                f"| {med_of(r, lambda b: b.core0):.0%} / {med_of(r, lambda b: b.core1):.0%} "
                f"| {r.setup_s:.1f} |")
        if sio and len(fanouts) > 1:
            hub = fanouts[0]
            lines += ["", f"**rthub / Socket.IO, control-to-all: p99 "
                      f"{to_all(hub, 0.99) / to_all(sio, 0.99):.2f}x, p50 "
                      f"{to_all(hub, 0.5) / to_all(sio, 0.5):.2f}x** (same run, same machine, "
                      f"{runs})."]
        lines += ["", "| server | run | delivery p50 / p99 ms "
                  "| control-to-all p50 / p90 / p99 / max ms | lost "
                  "| load generator's worst stall ms | core 0 / core 1 busy |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in fanouts:
            for n, b in enumerate(r.bursts, 1):
                lines.append(
                    f"| {r.name} | {n} | {pct(b.deliveries_ms, 0.5):.1f} / "
                    f"{pct(b.deliveries_ms, 0.99):.1f} | {pct(b.to_all_ms, 0.5):.1f} / "
                    f"{pct(b.to_all_ms, 0.9):.1f} / {pct(b.to_all_ms, 0.99):.1f} / "
                    f"{max(b.to_all_ms):.1f} | {b.lost} | {b.loop_lag_ms:.0f} "
                    f"| {b.core0:.0%} / {b.core1:.0%} |")
        lines.append("")
    lines += [NOTE]
    return "\n".join(lines) + "\n"


NOTE = (
    "Notes. The sync figures are loopback: the server's clock is the load generator's, so the "
    "truth is exact, and the only asymmetry between the two directions of an exchange is the "
    "random delay added here plus the hub's own queueing (all devices ping at once). The "
    "devices share one Python event loop, so a late wake-up of the loop counts as network "
    "delay. The mean of the 8 samples does as well as the lowest-delay filter here because "
    "the added delay is symmetric and uniform, which averaging suits; the filter is for "
    "one-sided queueing, such as the first exchange right after the joins, whose pong "
    "came back late (the socket's way out, or the load generator, still busy with the "
    "others' `party.joined` and presence frames): one such sample is what makes the "
    "first-exchange estimator miss the target. An rthub control goes from the host's socket "
    "through the gateway to the party "
    "entity (a Ray actor), which orders it, writes the `Played` event durably to PostgreSQL, "
    "then publishes it through Redis streams back to the gateway, which sends it to every "
    "follower; the whole `rthub up` (Ray's GCS and raylet, Serve, the gateway, the "
    "host, embedded PostgreSQL and Redis) shares core 0. Socket.IO only relays the host's "
    "message to the room inside one node process: nothing is ordered, checked or stored. "
    "Both servers run side by side on core 0 (the idle one costs the other little) and their "
    "listeners connect once; the runs are successive bursts on the same sockets, rthub's and "
    "Socket.IO's interleaved (the order alternating) so that other load on the machine hits "
    "both alike. Each rthub listener is its own user; up to RTHUB_PRESENCE_LIMIT (200) "
    "members each join is announced to everyone already in, past it only counted "
    "(`presence.occupancy`): that is the connect + join time, not part of the measured "
    "controls."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--devices", type=int)
    parser.add_argument("--listeners", type=int)
    parser.add_argument("--controls", type=int)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.devices = args.devices or (20 if args.quick else 100)
    args.listeners = args.listeners or (200 if args.quick else 2000)
    args.controls = args.controls or (10 if args.quick else 100)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stdout)
    os.sched_setaffinity(0, {1})
    raise_fd_limit(args.listeners * 3 + 2000)  # the servers, started from here, inherit it
    uvloop.install()
    load = os.getloadavg()[0]
    syncs, fanouts = asyncio.run(run(args))
    table = render(syncs, fanouts, args, (load, os.getloadavg()[0]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    log.info("results (also in %s):\n\n%s", RESULTS, table)


if __name__ == "__main__":
    main()
