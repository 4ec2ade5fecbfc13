"""What the Python SDK costs over a bare socket, and how long it takes to come back.

    python -m benchmarks.sdk_python            # 500 round trips, a 1,000 burst, 20 drops
    python -m benchmarks.sdk_python --quick

On one ``rthub up`` (``benchmarks.hub``; the hub on core 0, this process on core 1):
round trips of ``time.ping`` and ``chat.send``, --count sequential each, p50 / p99, through
``client.Hub`` and through a bare ``websockets`` connection sending the same frames; a
--burst of ``chat.send`` pipelined through the SDK (``max_in_flight`` at a time), messages
acknowledged per second; and --drops sockets killed without a close frame, the time from
the kill to the ``resumed`` welcome and to the first replayed event, with the default backoff
(a uniform wait in [0, 0.2 s] before the first attempt) and with none. Results go to stdout
and benchmarks/results/sdk_python.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path

import websockets

from benchmarks.hub import HubProcess
from benchmarks.parties import pct
from client import Hub

log = logging.getLogger("benchmarks.sdk_python")
RESULTS = Path(__file__).parent / "results" / "sdk_python.md"



async def sdk_trips(hub: Hub, count: int) -> dict[str, list[float]]:
    trips: dict[str, list[float]] = {"time.ping": [], "chat.send": []}
    for n in range(count):
        for kind, content in (("time.ping", {"t0": 0}),
                              ("chat.send", {"room": "bench", "text": "x",
                                             "client_msg_id": f"s{n}"})):
            start = time.perf_counter()
            await hub.request(kind, content)
            trips[kind].append((time.perf_counter() - start) * 1000)
    return trips


async def bare_trips(url: str, token: str, count: int) -> dict[str, list[float]]:
    trips: dict[str, list[float]] = {"time.ping": [], "chat.send": []}
    ids = itertools.count(1)
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  ping_interval=None) as ws:
        await ws.recv()  # the welcome
        await ws.send(json.dumps({"type": "room.join", "id": 0, "content": {"room": "bench"}}))
        while json.loads(await ws.recv()).get("ref") != 0:
            pass
        for n in range(count):
            for kind, content in (("time.ping", {"t0": 0}),
                                  ("chat.send", {"room": "bench", "text": "x",
                                                 "client_msg_id": f"b{n}"})):
                ident = next(ids)
                start = time.perf_counter()
                await ws.send(json.dumps({"type": kind, "id": ident, "content": content}))
                while json.loads(await ws.recv()).get("ref") != ident:
                    pass
                trips[kind].append((time.perf_counter() - start) * 1000)
    return trips


async def burst(hub: Hub, count: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(hub.request("chat.send", {"room": "bench", "text": "x",
                                                     "client_msg_id": f"p{n}"}, timeout_s=120)
                           for n in range(count)))
    return count / (time.perf_counter() - start)


async def one_drop(hub: Hub, sender: Hub, text: str) -> tuple[float, float]:
    """Kill the socket, send ``text`` meanwhile; ms to the next welcome (resumed, or a
    fresh session when the resume is refused), to ``text`` (replayed, or after `since`)."""
    loop = asyncio.get_running_loop()
    back, first = loop.create_future(), loop.create_future()

    def resumed(_: object) -> None:
        if not back.done():
            back.set_result(time.perf_counter())

    def message(content: dict, frame: dict) -> None:
        if content["text"] == text and not first.done():
            first.set_result(time.perf_counter())

    offs = [hub.on("resumed", resumed), hub.on("welcome", resumed),
            hub.on("chat.message", message)]
    start = time.perf_counter()
    hub._ws.transport.abort()
    await sender.request("chat.send", {"room": "bench", "text": text, "client_msg_id": text})
    try:
        back_at = await asyncio.wait_for(back, 60)
        if not hub.session.get("resumed"):
            log.warning("drop %s: the resume was refused; a fresh session", text)
        return (back_at - start) * 1000, (await asyncio.wait_for(first, 60) - start) * 1000
    finally:
        for off in offs:
            off()


async def drops(hub: Hub, sender: Hub, count: int) -> tuple[list[float], list[float]]:
    times = [await one_drop(hub, sender, f"gone-{id(hub)}-{n}") for n in range(count)]
    return [t[0] for t in times], [t[1] for t in times]


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {statistics.median(values):.2f} | {pct(values, 0.99):.2f} |"


async def run(args: argparse.Namespace) -> str:
    os.sched_setaffinity(0, {1})
    server = HubProcess("sdkpy")
    try:
        server.start()
        url = f"ws://127.0.0.1:{server.port}/ws"
        log.info("hub up at %s", url)
        owner = Hub(url, server.token("owner"), request_timeout_s=60)
        reader = Hub(url, server.token("reader"), request_timeout_s=60)
        for hub in (owner, reader):
            await hub.connect()
        await owner.request("room.create", {"room_id": "bench", "name": "bench"})
        await reader.request("room.join", {"room": "bench"})
        bare = await bare_trips(url, server.token("bare"), args.count)
        sdk = await sdk_trips(reader, args.count)
        rate = await burst(owner, args.burst)
        log.info("round trips and burst done; dropping sockets")
        # Fresh members for the drops: with the heartbeat at 600 s nothing is confirmed by
        # a pong, so a resume replays all since joining; the burst would be past retention.
        timed: dict[str, tuple[list[float], list[float]]] = {}
        for name, reconnect in (("default", None), ("none", {"initial_s": 0.0})):
            member = Hub(url, server.token(f"drop-{name}"), request_timeout_s=60,
                         reconnect=reconnect)
            await member.connect()
            await member.request("room.join", {"room": "bench"})
            timed[name] = await drops(member, owner, args.drops)
            await member.close()
        for hub in (owner, reader):
            await hub.close()
        resumed, replayed = timed["default"]
        fast_resumed, fast_replayed = timed["none"]
    finally:
        server.stop()
    return "\n".join([
        f"Round trips, {args.count} each, ms:", "", "| | p50 | p99 |", "|---|---|---|",
        row("time.ping, bare socket", bare["time.ping"]),
        row("time.ping, client.Hub", sdk["time.ping"]),
        row("chat.send, bare socket", bare["chat.send"]),
        row("chat.send, client.Hub", sdk["chat.send"]), "",
        f"Pipelined chat.send through client.Hub: {rate:,.0f} acked/s ({args.burst} sends)", "",
        f"Socket killed, {args.drops} times, ms (kill -> resumed welcome; -> replayed event):",
        "", "| backoff | resumed p50 | p99 | replayed p50 | p99 |", "|---|---|---|---|---|",
        f"| default (0.2 s) | {statistics.median(resumed):.0f} | {pct(resumed, .99):.0f} | "
        f"{statistics.median(replayed):.0f} | {pct(replayed, .99):.0f} |",
        f"| none | {statistics.median(fast_resumed):.0f} | {pct(fast_resumed, .99):.0f} | "
        f"{statistics.median(fast_replayed):.0f} | {pct(fast_replayed, .99):.0f} |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.count, args.burst, args.drops = 50, 200, 5
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.INFO)
    text = asyncio.run(run(args))
    log.warning("results:\n%s", text)
    if not args.quick:
        RESULTS.write_text(f"# benchmarks/sdk_python ({time.strftime('%Y-%m-%d')}, "
                           f"{os.cpu_count()} cores)\n\n{text}\n")


if __name__ == "__main__":
    main()
