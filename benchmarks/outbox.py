"""What the outbox costs: durable writes/s that each make a stream event, before and after.

    python -m benchmarks.outbox            # 5 runs each
    python -m benchmarks.outbox --quick    # 3 short runs each

Each write is a ``poll.vote`` that changes a voter's choice: one log event and one stream
event (``poll.counts``), so every ack waits for the group commit, which now also inserts the
event's outbox row, and every publish is followed by that row's (batched) delete. The
comparison is the same load on the commit before the outbox (``--before``, checked out into
a temporary git worktree), run alternately with the current tree in the same run, each in
a fresh process with its own Ray, on the machine's PostgreSQL and Redis (or the embedded
ones when RTHUB_TEST_POSTGRES_URL / RTHUB_TEST_REDIS_URL are unset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

log = logging.getLogger("benchmarks.outbox")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "outbox.md"
BEFORE = "b1408ba"  # main before the outbox


def measure(writes: int, polls: int, window: int) -> dict:
    """In this process: a hub of 2 hosts, ``window`` voters in a closed loop."""
    import asyncpg
    import ray

    from actors.client import ActorSystem
    from tests.conftest import make_settings

    async def run() -> dict:
        admin = os.environ["BENCH_PG"]
        database = f"bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{database}"')
        await conn.close()
        url = admin.rsplit("/", 1)[0] + f"/{database}"
        system = ActorSystem(make_settings(url, REDIS_URL=os.environ["BENCH_REDIS"],
                                           RTHUB_LOG_LEVEL="ERROR"))
        system.start()
        refs = [system.ref("poll", f"p{i}") for i in range(polls)]
        await asyncio.gather(*(r.ask("poll.create", {"user": "o", "question": "q?",
                                                     "options": ["a", "b"]}) for r in refs))
        per = writes // window

        async def voter(w: int) -> None:
            ref = refs[w % polls]
            for j in range(per):
                await ref.ask("poll.vote", {"user": f"u{w}", "option": j % 2})

        await asyncio.gather(*(voter(w) for w in range(window)))  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(voter(w) for w in range(window)))
        elapsed = time.perf_counter() - start
        stats = [await system.host(f"rthub-host-{i}").stats.remote() for i in range(2)]
        system.shutdown_hosts()
        return {"writes_per_s": per * window / elapsed,
                "published": sum(s["published"] for s in stats),
                "module": sys.modules["actors.residency"].__file__}

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        return asyncio.run(run())
    finally:
        ray.shutdown()


def worktree(commit: str) -> str:
    folder = tempfile.mkdtemp(prefix="rthub-before-")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", folder, commit],
                   check=True, capture_output=True)
    shutil.copy(__file__, Path(folder) / "benchmarks" / "outbox.py")  # this load, that code
    return folder


def one_run(tree: str, args: argparse.Namespace, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.outbox", "--measure", "--writes", str(args.writes),
         "--polls", str(args.polls), "--window", str(args.window)],
        cwd=tree, env={**env, "PYTHONPATH": tree}, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the run in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--polls", type=int, default=100)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        logging.disable(logging.WARNING)
        sys.stdout.write(json.dumps(measure(args.writes, args.polls, args.window)) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = args.runs or (3 if args.quick else 5)
    if args.quick:
        args.writes = 6_000
    env = {**os.environ, "RAY_ADDRESS": "",
           "BENCH_PG": os.environ.get("RTHUB_TEST_POSTGRES_URL", ""),
           "BENCH_REDIS": os.environ.get("RTHUB_TEST_REDIS_URL", "")}
    if not env["BENCH_PG"] or not env["BENCH_REDIS"]:
        sys.exit("set RTHUB_TEST_POSTGRES_URL and RTHUB_TEST_REDIS_URL (servers to measure on)")
    before = worktree(args.before)
    results: dict[str, list[float]] = {"before": [], "after": []}
    try:
        for run in range(runs):
            for name, tree in (("before", before), ("after", str(ROOT))):
                got = one_run(tree, args, env)
                assert got["module"].startswith(tree), got["module"]  # the intended code ran
                results[name].append(got["writes_per_s"])
                log.info("run %d %s: %.0f writes/s", run + 1, name, got["writes_per_s"])
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", before],
                       check=False, capture_output=True)
    b, a = (statistics.median(results[k]) for k in ("before", "after"))
    table = (f"`python -m benchmarks.outbox{' --quick' if args.quick else ''}` — "
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, median of {runs} runs "
             f"each, alternating; {args.writes:,} votes, {args.polls} polls, "
             f"{args.window} in flight; PostgreSQL and Redis on loopback\n\n"
             "| code | durable writes/s (each with a stream event) | runs |\n|---|---:|---|\n"
             f"| before the outbox ({args.before}) | {b:,.0f} | "
             f"{', '.join(f'{r:,.0f}' for r in results['before'])} |\n"
             f"| with the outbox | {a:,.0f} | "
             f"{', '.join(f'{r:,.0f}' for r in results['after'])} |\n\n"
             f"Ratio with/before: **{a / b:.2f}**\n")
    RESULTS.write_text(table)
    log.info("\n%s", table)


if __name__ == "__main__":
    main()
