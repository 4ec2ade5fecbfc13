"""Recommendations served: requests/s and latency through the hub's Serve app (Router ->
Recommender, a SASRec artifact), with ``@serve.batch`` and without it, in the same run.

    python -m benchmarks.recommend            # 3 runs of 20 s per mode, 64 callers
    python -m benchmarks.recommend --quick    # 1 run of 5 s per mode

A SASRec model is trained on synthetic listening first (1,000 users x 300 items, a few
epochs: serving cost does not depend on how good it is). Callers are coroutines in this
process sending through a Serve handle, as the gateway and hosts do; each sends its next
request when the last is answered (closed loop). "Batched": ``max_batch_size`` 32, 5 ms
wait, in the Router (one call to the model per batch) and the Recommender; "unbatched":
``max_batch_size`` 1 in both. The model called in-process (no Serve) on batches
of 1 and 32 bounds what Serve could reach. Medians of --runs runs; results go to stdout and
benchmarks/results/recommend.md (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
from ray import serve

from ml import artifact, synthetic
from ml.data import sequences
from ml.sasrec import SASRecConfig
from ml.train import fit_sasrec
from serve.deployments.recommender import run

log = logging.getLogger("benchmarks.recommend")
RESULTS = Path(__file__).parent / "results" / "recommend.md"
MODES = {"batched": {"max_batch_size": 32, "batch_wait_timeout_s": 0.005},
         "unbatched": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}


def make_model(root: Path) -> tuple[Path, list[list[str]]]:
    seqs = sequences(synthetic.generate(users=1000, items=300, seed=0))
    path = fit_sasrec(seqs, root, "bench", "v1", SASRecConfig(epochs=3, eval_every=3))
    return path, [s[-20:] for s in seqs.values()]


async def load(handle, histories: list[list[str]], callers: int, seconds: float
               ) -> tuple[float, list[float]]:
    """(requests/s, latencies ms) of ``callers`` closed-loop callers for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    rng = random.Random(0)

    async def caller(n: int) -> None:
        while time.perf_counter() < deadline:
            history = histories[rng.randrange(len(histories))]
            started = time.perf_counter()
            await handle.remote({"tenant": "t", "user": f"u{n}", "history": history,
                                 "exclude": [], "limit": 10})
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(callers)))
    return len(latencies) / (time.perf_counter() - started), latencies


def in_process(path: Path, histories: list[list[str]], batch: int, seconds: float) -> float:
    """Recommendations/s of the model called directly, ``batch`` histories at a time."""
    model = artifact.load(path)
    done, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        model.recommend([histories[(done + i) % len(histories)] for i in range(batch)], 10)
        done += batch
    return done / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def measure(args: argparse.Namespace, path: Path, histories: list[list[str]]) -> dict:
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
    for run_no in range(args.runs):
        for mode, batching in MODES.items():
            run("bench", {"variants": {"a": {"model": {"path": str(path)}, **batching}},
                          "router": batching})
            handle = serve.get_deployment_handle("Router", app_name="bench")
            await load(handle, histories, args.callers, 1.0)  # warm-up
            rate, times = await load(handle, histories, args.callers, args.seconds)
            results[mode].append((rate, pct(times, 0.5), pct(times, 0.99)))
            log.info("run %d %s: %.0f/s p50 %.1f p99 %.1f ms", run_no, mode, rate,
                     pct(times, 0.5), pct(times, 0.99))
            serve.delete("bench")
    return results


def render(results: dict, direct: dict[int, float], args: argparse.Namespace) -> str:
    def med(mode: str, n: int) -> float:
        return statistics.median(r[n] for r in results[mode])

    base = med("unbatched", 0)
    lines = [f"`python -m benchmarks.recommend{' --quick' if args.quick else ''}` — "
             f"{time.strftime('%Y-%m-%d')}, 2 cores, {args.callers} closed-loop callers, "
             f"median of {args.runs} run(s) of {args.seconds:.0f} s", "",
             "| path | recommendations/s | p50 / p99 ms | vs unbatched |", "|---|---:|---:|---:|"]
    for mode in MODES:
        lines.append(f"| Serve, {mode} | {med(mode, 0):,.0f} | {med(mode, 1):.1f} / "
                     f"{med(mode, 2):.1f} | {med(mode, 0) / base:.2f} |")
    for batch, rate in direct.items():
        lines.append(f"| in-process, {batch} at a time (no Serve) | {rate:,.0f} | - | "
                     f"{rate / base:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--callers", type=int, default=64)
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    root = Path(tempfile.mkdtemp(prefix="rthub-recommend-"))
    path, histories = make_model(root)
    direct = {b: in_process(path, histories, b, 3.0) for b in (1, 32)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start()
    try:
        results = asyncio.run(measure(args, path, histories))
    finally:
        serve.shutdown()
        ray.shutdown()
    table = render(results, direct, args)
    sys.stdout.write(table)
    if not args.quick:
        RESULTS.write_text(table)


if __name__ == "__main__":
    main()
