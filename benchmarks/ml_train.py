"""Recommendation training: popularity, item-kNN and SASRec on synthetic listening, over
several data seeds, as ``rthub ml train`` runs them (``ml.train.train_from``).

    python -m benchmarks.ml_train            # 2,000 users x 1,000 items, seeds 0-2
    python -m benchmarks.ml_train --quick    # 500 users x 300 items, seed 0, 10 epochs

Each seed generates its own data (``ml.synthetic.generate``), splits it leave-one-out, fits
popularity, tunes item-kNN's window and recent-items on validation (a 3 x 3 grid, timed as
its training), trains SASRec with the default ``SASRecConfig`` (early stopping on validation
HR@10) and evaluates all three by full ranking of the catalogue. Then it loads the shipped
artifact and times ``Recommender.recommend`` for 1 and for 64 histories. Figures: medians
over seeds; every seed is listed too. Results: stdout and benchmarks/results/ml_train.md
(not written with --quick).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from ml import artifact, synthetic
from ml.data import sequences
from ml.sasrec import SASRecConfig
from ml.train import Report, train_from

log = logging.getLogger("benchmarks.ml_train")
RESULTS = Path(__file__).parent / "results" / "ml_train.md"
MODELS = ("popularity", "itemknn", "sasrec")


def serve_latency(path: Path, histories: list[list[str]]) -> dict[str, float]:
    """Milliseconds: loading the artifact, then recommend(k=10) p50 for 1 and 64 histories."""
    started = time.perf_counter()
    rec = artifact.load(path)
    out = {"load": (time.perf_counter() - started) * 1000}
    for batch in (1, 64):
        times = []
        for n in range(0, 40):
            chunk = [histories[(n * batch + i) % len(histories)] for i in range(batch)]
            started = time.perf_counter()
            rec.recommend(chunk, 10)
            times.append((time.perf_counter() - started) * 1000)
        out[f"batch {batch}"] = statistics.median(times[5:])
    return out


def one_seed(seed: int, users: int, items: int, config: SASRecConfig, root: Path
             ) -> tuple[Report, dict[str, float]]:
    events = synthetic.generate(users=users, items=items, seed=seed)
    _, report = train_from(events, root, "bench", f"seed{seed}", config, seed=0,
                           source=f"synthetic seed {seed}")
    histories = [items[-50:] for _, items in zip(range(200), sequences(events).values(),
                                                   strict=False)]
    return report, serve_latency(report.path, histories)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def render(runs: list[tuple[int, Report, dict[str, float]]], args: argparse.Namespace,
           config: SASRecConfig, load: tuple[float, float], wall: float) -> str:
    first = runs[0][1].data
    hr = {m: _median([r.results[m]["hr@10"] for _, r, _ in runs]) for m in MODELS}
    ndcg = {m: _median([r.results[m]["ndcg@10"] for _, r, _ in runs]) for m in MODELS}
    secs = {m: _median([r.seconds[m] for _, r, _ in runs]) for m in MODELS}
    gains = {b: [r.results["sasrec"]["hr@10"] - r.results[b]["hr@10"] for _, r, _ in runs]
             for b in ("popularity", "itemknn")}
    command = "python -m benchmarks.ml_train" + (" --quick" if args.quick else "")
    lines = [
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} on CPU, SASRec training on {config.threads} thread(s). Load "
        f"average {load[0]:.2f} before, {load[1]:.2f} after; {wall:.0f} s in all.",
        "",
        f"Synthetic listening (`ml.synthetic.generate`): {args.users:,} users x {args.items:,} "
        f"items, data seeds {', '.join(str(s) for s, _, _ in runs)}; seed {runs[0][0]} has "
        f"{first['events']:,} events, {first['positives']:,} positives. Leave-one-out split, "
        f"{first['test_users']:,} test users, full ranking of all items, history not excluded. "
        f"SASRec: dim {config.dim}, {config.heads} heads, {config.blocks} blocks, max_len "
        f"{config.max_len}, dropout {config.dropout}, Adam lr {config.lr}, batch "
        f"{config.batch_size}, at most {config.epochs} epochs with early stopping on "
        "validation HR@10. Item-kNN: window x recent tuned on validation.",
        "",
        "Medians over seeds:",
        "",
        "| model | HR@10 | NDCG@10 | SASRec HR@10 gain over it | training s |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in MODELS:
        gain = "—"
        if m != "sasrec":
            g = _median(gains[m])
            gain = f"{g:+.4f} ({g / hr[m]:+.0%})" if hr[m] > 0 else f"{g:+.4f}"
        lines.append(f"| {m} | {hr[m]:.4f} | {ndcg[m]:.4f} | {gain} | {secs[m]:.1f} |")
    shipped = [r.shipped for _, r, _ in runs]
    lines += ["", f"Shipped: {', '.join(f'seed {s}: {r.shipped}' for s, r, _ in runs)}. "
              f"SASRec's HR@10 gain over item-kNN per seed: "
              f"{', '.join(f'{g:+.4f}' for g in gains['itemknn'])}.", ""]
    if all(s == "sasrec" for s in shipped):
        lines.append("SASRec beats both baselines on HR@10 on every seed.")
    else:
        lines.append("SASRec does NOT beat both baselines on every seed; see each seed below.")
    lines += ["", "Every seed:", ""]
    for seed, report, serve in runs:
        lines += [f"**Seed {seed}** — trained: " + ", ".join(
            f"{m} {report.seconds[m]:.1f} s{report.details.get(m, '')}" for m in MODELS)
            + f". Shipped artifact ({report.shipped}): load {serve['load']:.0f} ms, "
            f"recommend k=10 p50 {serve['batch 1']:.2f} ms for 1 history, "
            f"{serve['batch 64']:.2f} ms for 64.", "", report.table, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one seed")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None, help="how many data seeds")
    args = parser.parse_args()
    args.users = args.users or (500 if args.quick else 2000)
    args.items = args.items or (300 if args.quick else 1000)
    seeds = range(args.seeds or (1 if args.quick else 3))
    config = replace(SASRecConfig(), epochs=10) if args.quick else SASRecConfig()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_before, started = os.getloadavg()[0], time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="rthub-ml-bench-") as root:
        for seed in seeds:
            log.info("seed %d: %d users x %d items", seed, args.users, args.items)
            report, serve = one_seed(seed, args.users, args.items, config, Path(root))
            log.info("seed %d: %s", seed, report.reason)
            runs.append((seed, report, serve))
    text = render(runs, args, config, (load_before, os.getloadavg()[0]),
                  time.perf_counter() - started)
    sys.stdout.write(text + "\n")
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
