"""What the gateway's security checks cost: rate limits on every frame, address and country
rules on every socket opening, with them on against off in the same run.

    python -m benchmarks.security            # 3 runs
    python -m benchmarks.security --quick    # 1 short run

Three hubs (``rthub up``, one gateway replica, server on core 0, load on core 1), started
in turn: *off* (RTHUB_RATE_LIMITS empty, no address rules: what every other benchmark
runs), *limits* (per-user, per-IP and per-tenant buckets on every frame, and per-user
socket openings: three buckets a frame, each leased from Redis a tenth of a second of its
rate at a time, the Redis calls of one loop turn in one pipeline),
and *limits + address rules* (the same, plus X-Forwarded-For from a trusted proxy, CIDR
allow and deny lists and a country deny list from a MaxMind database on every opening).
Per run, on one socket: ``time.ping`` (answered by the gateway alone: the check is all the
extra work) and ``chat.send`` (a durable message) round trips, p50 / p99; a pipelined burst
of each, acknowledged per second; and sockets opened one after another, per second. Also
in-process: the address rules' and the limiter's own cost per call.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

from benchmarks.fanout import UNBOUNDED, Rthub
from benchmarks.loadgen import Socket
from benchmarks.requests import RthubRequester, pct, quiet
from rthub import config
from serve.auth import issue_token
from serve.security.limits import RateLimiter
from serve.security.network import NetworkPolicy

log = logging.getLogger("benchmarks.security")
RESULTS = Path(__file__).parent / "results" / "security.md"
LIMITS = ("user:*=1000000/1000000,ip:*=1000000/1000000,tenant:*=1000000/1000000,"
          "user:connect=1000000/1000000")
QUIET_S = 15  # the longest wait for the server to settle before a timing (Ray's own chores)
CLIENT = "198.51.100.20"  # placed in FR by the benchmark's database


def country_db(folder: Path) -> str:
    from mmdb_writer import MMDBWriter  # a dev dependency, like the benchmark itself
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for network, code in (("198.51.100.0/24", "FR"), ("203.0.113.0/24", "KP"),
                          ("2001:db8::/32", "DE")):
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    path = folder / "countries.mmdb"
    writer.to_db_file(str(path))
    return str(path)


def variants(folder: Path) -> dict[str, dict[str, str]]:
    guarded = {"RTHUB_RATE_LIMITS": LIMITS, "RTHUB_TRUSTED_PROXIES": "127.0.0.1,::1",
               "RTHUB_IP_ALLOW": "198.51.100.0/24,2001:db8::/32,10.0.0.0/8",
               "RTHUB_IP_DENY": "198.51.100.66,10.9.0.0/16",
               "RTHUB_GEOIP_DB": country_db(folder), "RTHUB_GEO_DENY": "KP,RU,IR"}
    return {"off": {"RTHUB_RATE_LIMITS": ""}, "limits": {"RTHUB_RATE_LIMITS": LIMITS},
            "limits + address rules": guarded}


class Hub(Rthub):
    """One variant's hub; its sockets come through a "proxy" naming the client."""

    replicas = 1

    def __init__(self, label: str, env: dict[str, str]) -> None:
        self.name, self.extra_env = label, {**Rthub.extra_env, **UNBOUNDED, **env}

    async def member(self, user: str, room: str, first: bool) -> Socket:
        sock = await self.open_socket(user)
        reply = await self._ask(sock, "room.create", {"room_id": room, "name": room}, 1)
        if '"error"' in reply:
            raise RuntimeError(reply)
        return sock

    async def open_socket(self, user: str) -> Socket:
        token = issue_token(self.secret, user, ttl_s=7200)
        sock = await Socket.open("127.0.0.1", self.port, "/ws", {
            "Authorization": f"Bearer {token}", "X-Forwarded-For": CLIENT}, self.tls)
        welcome = await sock.recv()
        if "session.welcome" not in welcome:
            raise RuntimeError(welcome)
        return sock


async def openings(hub: Hub, count: int) -> float:
    """Sockets opened (upgrade, checks, welcome) one after another, per second."""
    start = time.perf_counter()
    for i in range(count):
        sock = await hub.open_socket(f"open-{i % 4}")
        sock.transport.close()
    return count / (time.perf_counter() - start)


async def one_run(hub: Hub, requester: RthubRequester, args: argparse.Namespace, run: int
                  ) -> dict[str, float]:
    figures: dict[str, float] = {}
    ident = (run + 1) * 1_000_000
    kinds = requester.kinds()
    for key in ("gateway", "send"):
        await quiet(hub, QUIET_S)
        kind = kinds[key]
        assert kind is not None
        times = []
        for i in range(args.count + 20):  # 20 warm-up
            ident += 1
            elapsed = await requester.round_trip(kind.frame(ident), ident)
            if i >= 20:
                times.append(elapsed)
        figures[f"{key} p50"], figures[f"{key} p99"] = pct(times, 0.5), pct(times, 0.99)
        await quiet(hub, QUIET_S)
        figures[f"{key} burst"] = await requester.burst(kind, args.burst, ident + 1)
        ident += args.burst + 1
    await quiet(hub, QUIET_S)
    figures["openings"] = await openings(hub, args.openings)
    log.info("%s run %d: %s", hub.name, run, {k: round(v, 2) for k, v in figures.items()})
    return figures


async def in_process(folder: Path, redis_url: str) -> dict[str, float]:
    """Per call, in this process: the address rules (a lookup per opening) and the limiter
    (a Redis round trip shared by what arrives together)."""
    settings = config.load({k: v for k, v in variants(folder)["limits + address rules"].items()
                            if k != "RTHUB_RATE_LIMITS"})
    policy = NetworkPolicy.from_settings(settings)
    number = 20_000
    check_us = timeit.timeit(lambda: policy.check(policy.client_ip("127.0.0.1", CLIENT)),
                             number=number) / number * 1e6
    redis = aioredis.from_url(redis_url)
    figures = {"address rules": check_us}
    # leased: the benchmark's rules; unleased: a lease of one token (what a rule of under
    # 20/s gets), every check a script in Redis: the worst case
    for label, rules in (("leased", LIMITS), ("every check in Redis", "user:*=10/1000000")):
        limiter = RateLimiter(redis, config.load({"RTHUB_RATE_LIMITS": rules}).rate_limits,
                              prefix=f"bench:rl:{uuid.uuid4().hex[:6]}")
        await limiter.check("time.ping", "t", "u", CLIENT)  # loads the script
        one = time.perf_counter()
        for _ in range(2000):
            await limiter.check("time.ping", "t", "u", CLIENT)
        figures[f"limiter {label}, one at a time"] = (time.perf_counter() - one) / 2000 * 1e6
        start = time.perf_counter()
        for _ in range(20):
            await asyncio.gather(*(limiter.check("time.ping", "t", f"u{i}", CLIENT)
                                   for i in range(100)))
        figures[f"limiter {label}, 100 together"] = (time.perf_counter() - start) / 2000 * 1e6
    await redis.aclose()
    return figures


async def run(args: argparse.Namespace, folder: Path) -> tuple[dict[str, list], dict]:
    results: dict[str, list[dict[str, float]]] = {}
    for label, env in variants(folder).items():
        hub = Hub(label, env)
        hub.start()
        try:
            requester = RthubRequester(hub)
            await requester.open()
            results[label] = [await one_run(hub, requester, args, i) for i in range(args.runs)]
        finally:
            hub.stop()
    micro = await in_process(folder, args.redis)
    return results, micro


def render(results: dict[str, list[dict[str, float]]], micro: dict[str, float],
           args: argparse.Namespace) -> str:
    def med(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    lines = [
        f"`python -m benchmarks.security{' --quick' if args.quick else ''}` — "
        f"{time.strftime('%Y-%m-%d')}, one gateway replica on core 0, load on core 1, "
        f"median of {args.runs} runs; {args.count} round trips of each kind, bursts of "
        f"{args.burst:,}, {args.openings} socket openings per run.",
        "",
        "| checks | `time.ping` p50 / p99 ms | `time.ping` burst/s | `chat.send` p50 / p99 ms "
        "| `chat.send` burst/s | sockets opened/s | burst vs off (ping / send / open) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in results:
        ratio = " / ".join(f"{med(label, k) / med('off', k):.2f}"
                           for k in ("gateway burst", "send burst", "openings"))
        lines.append(
            f"| {label} | {med(label, 'gateway p50'):.2f} / {med(label, 'gateway p99'):.2f} "
            f"| {med(label, 'gateway burst'):,.0f} | {med(label, 'send p50'):.2f} / "
            f"{med(label, 'send p99'):.2f} | {med(label, 'send burst'):,.0f} "
            f"| {med(label, 'openings'):,.0f} | {ratio} |")
    lines += ["", "In-process, per call: " + "; ".join(
        f"{name} {us:.1f} µs" for name, us in micro.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--redis", default=os.environ.get("RTHUB_TEST_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"),
                        help="a Redis for the in-process limiter figures")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.count = 100 if args.quick else 300
    args.burst = 500 if args.quick else 2000
    args.openings = 50 if args.quick else 200
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.sched_setaffinity(0, {1})
    uvloop.install()
    with tempfile.TemporaryDirectory(prefix="rthub-security-") as folder:
        results, micro = asyncio.run(run(args, Path(folder)))
    table = render(results, micro, args)
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
