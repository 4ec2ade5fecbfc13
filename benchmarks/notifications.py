"""Notifications end to end: a service sends, an online user's socket receives.

    python -m benchmarks.notifications            # 3 runs: 2,000 sends, a 10,000 LOW backlog
    python -m benchmarks.notifications --quick    # 1 run, 500 sends, a 2,000 LOW backlog

Throughput: --users sockets online, each following its own topic; --sends notifications
posted to them (``POST /v1/notifications`` from --senders concurrent HTTP clients: accepted
durably, dispatched by priority, delivered through the user's inbox entity); notifications
per second from the first send to the last delivery, and p50 / p99 from send to delivery
(--batch notifications per ``POST /v1/notifications/bulk``; 1 posts each on its own).
Socket.IO 4.8 on the same load generator: a sender socket emits each notification to the
user's room (``pub``, in memory only: nothing is stored, no queue, no retry).
Priority (rthub only): --backlog LOW notifications posted as fast as the senders can, then
20 CRITICAL ones, one every 50 ms, while the backlog drains: each one's p50 / p99 from send
to delivery, against the LOW ones'. Digest (rthub only): --digest-per-user LOW
notifications to each of --users users who chose a 60 s digest for their category and to as
many who did not; the messages the hub sends to Pusher (a counting sink on loopback stands
in for it) for each group, once the digests' windows have closed. Every server is pinned to
core 0, the load generator to core 1; figures are medians of --runs runs; results go to
stdout and benchmarks/results/notifications.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop
from aiohttp import web

from benchmarks.fanout import Rthub, SocketIO
from benchmarks.loadgen import Socket
from serve.auth import issue_token

log = logging.getLogger("benchmarks.notifications")
RESULTS = Path(__file__).parent / "results" / "notifications.md"
CRITICAL_COUNT = 20
DIGEST_WINDOW_S = 60
PUSHER = {"PUSHER_APP_ID": "4242", "PUSHER_KEY": "bench-key", "PUSHER_SECRET": "bench-secret"}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class Arrivals:
    """Delivery times by notification tag (the send time the sender put in it)."""

    def __init__(self) -> None:
        self.latency_ms: dict[str, float] = {}
        self.last = 0.0
        self.changed = asyncio.Event()

    def arrived(self, tag: str, sent_ms: float) -> None:
        now = time.time() * 1000
        self.latency_ms[tag] = now - sent_ms
        self.last = now
        self.changed.set()

    async def until(self, count: int, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            while len(self.latency_ms) < count:
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Run:
    rate: float
    p50: float
    p99: float
    critical_p50: float = float("nan")
    critical_p99: float = float("nan")
    low_p50: float = float("nan")
    low_p99: float = float("nan")
    backlog_s: float = float("nan")
    alerts_plain: int = 0  # messages to Pusher for users without a digest
    alerts_digest: int = 0  # ... and for as many with one


class PusherSink:
    """Counts the events published to Pusher per channel. A sink, not a checker: the tests'
    local Pusher (tests/notify/servers/pusher.py) checks the request signing."""

    def __init__(self) -> None:
        self.by_channel: dict[str, int] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.changed = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/apps/{app_id}/events", self._event)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _event(self, request: web.Request) -> web.Response:
        for channel in (await request.json())["channels"]:
            self.by_channel[channel] = self.by_channel.get(channel, 0) + 1
        self.changed.set()
        return web.json_response({})

    def count(self, prefix: str) -> int:
        return sum(n for c, n in self.by_channel.items()
                   if c.startswith(f"private-user-{prefix}"))


async def rthub_users(target: Rthub, count: int, arrivals: Arrivals) -> list[Socket]:
    def on_text(text: str) -> None:
        if '"type":"notification"' in text:
            data = json.loads(text)["content"]["data"]
            arrivals.arrived(data["tag"], data["t0"])

    sockets = []
    for n in range(count):
        sock = await target.idle(f"u{n}")
        reply = await target._ask(sock, "subscribe", {"topic": f"user:u{n}"}, 1)
        assert '"error"' not in reply, reply
        sock.on_text = on_text
        sockets.append(sock)
    return sockets


async def post_all(http: httpx.AsyncClient, url: str, token: str, bodies: list[dict],
                   senders: int, batch: int = 1) -> None:
    """Post ``bodies`` from ``senders`` concurrent clients, one per request or ``batch`` per
    bulk request; a refusal (429) is retried after its ``retry_after_ms``."""
    chunks = ([{"notifications": bodies[n:n + batch]} for n in range(0, len(bodies), batch)]
              if batch > 1 else bodies)
    target = f"{url}/bulk" if batch > 1 else url
    queue = iter(chunks)

    async def sender() -> None:
        for body in queue:
            while True:
                answer = await http.post(target, json=body, headers={
                    "authorization": f"Bearer {token}"})
                if answer.status_code != 429:
                    break
                await asyncio.sleep(answer.json()["error"]["retry_after_ms"] / 1000)
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(sender() for _ in range(senders)))


def body(user: int, tag: str, priority: str) -> dict:
    """In-app only: the throughput and priority figures measure the hub, not the Pusher
    sink the digest part counts with."""
    return {"user_id": f"u{user}", "title": "New song added", "priority": priority,
            "channels": ["in_app"], "data": {"tag": tag, "t0": time.time() * 1000}}


async def rthub_run(target: Rthub, args: argparse.Namespace, run: int) -> Run:
    arrivals = Arrivals()
    sockets = await rthub_users(target, args.users, arrivals)
    url = f"http://127.0.0.1:{target.hub.http_port}/v1/notifications"
    token = issue_token(target.secret, "svc", scopes="notify:send", ttl_s=7200)
    users = itertools.cycle(range(args.users))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(
            max_connections=args.senders)) as http:
        await post_all(http, url, token, [body(next(users), f"w{run}-{n}", "NORMAL")
                                          for n in range(50)], args.senders)  # warm-up
        await arrivals.until(50, 120)
        arrivals.latency_ms.clear()
        start = time.time() * 1000
        await post_all(http, url, token, [body(next(users), f"t{run}-{n}", "NORMAL")
                                          for n in range(args.sends)], args.senders, args.batch)
        await arrivals.until(args.sends, 600)
        times = list(arrivals.latency_ms.values())
        result = Run(args.sends / ((arrivals.last - start) / 1000), pct(times, 0.5),
                     pct(times, 0.99))
        arrivals.latency_ms.clear()

        async def criticals() -> None:
            for n in range(CRITICAL_COUNT):
                await post_all(http, url, token, [body(n % args.users, f"c{run}-{n}",
                                                       "CRITICAL")], 1)
                await asyncio.sleep(0.05)

        backlog_start = time.time()
        await post_all(http, url, token, [body(next(users), f"l{run}-{n}", "LOW")
                                          for n in range(args.backlog)], args.senders, args.batch)
        await criticals()
        await arrivals.until(args.backlog + CRITICAL_COUNT, 900)
        result.backlog_s = arrivals.last / 1000 - backlog_start
        critical = [v for k, v in arrivals.latency_ms.items() if k.startswith("c")]
        low = [v for k, v in arrivals.latency_ms.items() if k.startswith("l")]
        result.critical_p50, result.critical_p99 = pct(critical, 0.5), pct(critical, 0.99)
        result.low_p50, result.low_p99 = pct(low, 0.5), pct(low, 0.99)
    for sock in sockets:
        sock.transport.close()
    result.alerts_plain, result.alerts_digest = await digest_run(target, args, run)
    return result


async def digest_run(target: Rthub, args: argparse.Namespace, run: int) -> tuple[int, int]:
    """(Pusher messages for users without a digest, for as many with one)."""
    sink: PusherSink = target.sink
    arrivals = Arrivals()

    def on_text(text: str) -> None:
        if '"type":"notification"' in text:
            data = json.loads(text)["content"]["data"]
            arrivals.arrived(data["tag"], data["t0"])

    sockets = []
    for group in ("plain", "digest"):
        for n in range(args.users):
            user = f"{group}{run}-{n}"
            sock = await target.idle(user)
            await target._ask(sock, "subscribe", {"topic": f"user:{user}"}, 1)
            if group == "digest":
                reply = await target._ask(sock, "notification.prefs", {
                    "category": "social", "digest": {"window_s": DIGEST_WINDOW_S}}, 2)
                assert '"error"' not in reply, reply
            sock.on_text = on_text
            sockets.append(sock)
    bodies = [{"user_id": f"{group}{run}-{n}", "title": f"like {k}", "priority": "LOW",
               "category": "social", "data": {"tag": f"{group}-{n}-{k}",
                                              "t0": time.time() * 1000}}
              for k in range(args.digest_per_user) for group in ("plain", "digest")
              for n in range(args.users)]
    url = f"http://127.0.0.1:{target.hub.http_port}/v1/notifications"
    token = issue_token(target.secret, "svc", scopes="notify:send", ttl_s=7200)
    async with httpx.AsyncClient(timeout=120) as http:
        await post_all(http, url, token, bodies, args.senders, args.batch)
    await arrivals.until(len(bodies), 600)  # every one in-app (the digested ones silent)
    window_end = (arrivals.last / 1000 // DIGEST_WINDOW_S + 1) * DIGEST_WINDOW_S
    await asyncio.sleep(max(0.0, window_end + 5 - time.time()))  # the window must close
    async with asyncio.timeout(120):
        while (sink.count(f"digest{run}-") < args.users
               or sink.count(f"plain{run}-") < args.users * args.digest_per_user):
            sink.changed.clear()
            await sink.changed.wait()
    for sock in sockets:
        sock.transport.close()
    return sink.count(f"plain{run}-"), sink.count(f"digest{run}-")


async def socketio_run(target: SocketIO, args: argparse.Namespace, run: int) -> Run:
    arrivals = Arrivals()

    def on_text(text: str) -> None:
        if text.startswith('42["msg",'):
            data = json.loads(text[2:])[1]
            arrivals.arrived(data["tag"], data["t0"])

    sockets = []
    for n in range(args.users):
        sock = await target.member(f"u{n}", f"user:u{n}", True)
        sock.on_text = on_text
        sockets.append(sock)
    senders = [await target.idle(f"svc{n}") for n in range(args.senders)]
    start = time.time() * 1000
    for n in range(args.sends):
        payload = {"tag": f"t{run}-{n}", "t0": time.time() * 1000}
        senders[n % len(senders)].send("42" + json.dumps(
            ["pub", {"room": f"user:u{n % args.users}", "payload": payload}]))
        if n % 100 == 99:
            await asyncio.sleep(0)  # let deliveries in, as the HTTP senders do
    await arrivals.until(args.sends, 600)
    times = list(arrivals.latency_ms.values())
    for sock in sockets + senders:
        sock.transport.close()
    return Run(args.sends / ((arrivals.last - start) / 1000), pct(times, 0.5),
               pct(times, 0.99))


async def run(args: argparse.Namespace) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {}
    for cls, one in ((Rthub, rthub_run), (SocketIO, socketio_run)):
        if args.only and cls.key not in args.only.split(","):
            continue
        target = cls()
        if isinstance(target, Rthub):
            target.replicas = 1
            target.sink = PusherSink()
            await target.sink.start()
            target.extra_env = {**target.extra_env, **PUSHER,
                                "RTHUB_PUSHER_URL": target.sink.url}
        target.start()
        try:
            results[target.name] = []
            for n in range(args.runs):
                results[target.name].append(await one(target, args, n))
                log.info("%s run %d: %s", target.name, n, results[target.name][-1])
        finally:
            target.stop()
    return results


def render(results: dict[str, list[Run]], args: argparse.Namespace) -> str:
    def med(runs: list[Run], name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    base = next((med(runs, "rate") for name, runs in results.items()
                 if name.startswith("Socket.IO")), float("nan"))
    lines = [f"`python -m benchmarks.notifications{' --quick' if args.quick else ''}` — "
             f"{time.strftime('%Y-%m-%d')}, servers on core 0, load generator on core 1, "
             f"median of {args.runs} run(s)", "",
             f"Throughput: {args.users} users online, {args.sends} notifications from "
             f"{args.senders} concurrent senders"
             + (f", {args.batch} per bulk request (Socket.IO: one emit each)."
                if args.batch > 1 else ", one request each."), "",
             "| server | notifications/s | p50 / p99 ms, send to delivery | vs Socket.IO |",
             "|---|---:|---:|---:|"]
    for name, runs in results.items():
        lines.append(f"| {name} | {med(runs, 'rate'):,.0f} | {med(runs, 'p50'):.1f} / "
                     f"{med(runs, 'p99'):.1f} | {med(runs, 'rate') / base:.2f} |")
    rthub = next((runs for name, runs in results.items() if name.startswith("rthub")), None)
    if rthub:
        lines += ["", f"Priority: {args.backlog:,} LOW notifications queued, then "
                  f"{CRITICAL_COUNT} CRITICAL ones, one every 50 ms, while they drain.", "",
                  "| notifications | p50 / p99 ms, send to delivery |", "|---|---:|",
                  f"| CRITICAL | {med(rthub, 'critical_p50'):.1f} / "
                  f"{med(rthub, 'critical_p99'):.1f} |",
                  f"| LOW (the backlog) | {med(rthub, 'low_p50'):,.0f} / "
                  f"{med(rthub, 'low_p99'):,.0f} |", "",
                  f"The backlog drained in {med(rthub, 'backlog_s'):.1f} s.", "",
                  f"Digest: {args.digest_per_user} LOW notifications to each of {args.users} "
                  f"users with a {DIGEST_WINDOW_S} s digest, and to as many without; messages "
                  "the hub sent to Pusher (every notification also reached each inbox).", "",
                  "| users | notifications | Pusher messages |", "|---|---:|---:|",
                  f"| without a digest | {args.users * args.digest_per_user:,} | "
                  f"{med(rthub, 'alerts_plain'):,.0f} |",
                  f"| with a {DIGEST_WINDOW_S} s digest | {args.users * args.digest_per_user:,}"
                  f" | {med(rthub, 'alerts_digest'):,.0f} |", "",
                  f"The digest sends {med(rthub, 'alerts_plain') / med(rthub, 'alerts_digest'):.1f}"
                  "x fewer messages (a user whose notifications straddle a window boundary gets "
                  "two)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--sends", type=int)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50,
                        help="notifications per bulk request (1: one request each)")
    parser.add_argument("--backlog", type=int)
    parser.add_argument("--digest-per-user", type=int, default=10)
    parser.add_argument("--only", help="comma-separated: rthub, socketio")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.sends = args.sends or (500 if args.quick else 2000)
    args.backlog = args.backlog or (2000 if args.quick else 10_000)
    os.sched_setaffinity(0, {1})
    results = uvloop.run(run(args))
    table = render(results, args)
    sys.stdout.write(table)
    if not (args.quick or args.only):
        RESULTS.write_text(table)


if __name__ == "__main__":
    main()
