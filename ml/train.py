"""``rthub ml train``: train popularity, item-kNN and SASRec on the same leave-one-out split,
judge them with the same full-ranking evaluation, and write the artifact of the one that
ships.

SASRec ships only when its validation HR@10 beats BOTH baselines (chosen on validation, so
the test figures the report prints stay an honest estimate); otherwise the better baseline
ships (a transformer that does not beat counting is not worth serving). Item-kNN's
``window`` and ``recent`` are picked on the validation targets from a small grid, so the
bar SASRec has to clear is a tuned one. ``train_from`` is the whole procedure for any list
of events (CSV here, Postgres for the hub); ``main`` is the command line around it.

    python -m ml.train --synthetic [--users N --items N --seed S] [--quick]
    python -m ml.train --events listens.csv --out .rthub/models --name music
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ml import artifact, synthetic
from ml.baselines import ItemKNN, KNNConfig, Popularity
from ml.data import POSITIVE, Interaction, fingerprint, read_csv, sequences
from ml.evaluate import encode, evaluate, table
from ml.sasrec import SASRecConfig, train
from ml.split import leave_one_out
from ml.vocab import Vocab

log = logging.getLogger("ml.train")
KNN_GRID = {"window": (1, 2, 3), "recent": (1, 3, 5)}
QUICK = SASRecConfig(epochs=6)
QUICK_USERS = 300


@dataclass
class Report:
    path: Path
    shipped: str
    reason: str
    results: dict[str, dict[str, float]]  # test figures per model
    valid: dict[str, dict[str, float]]
    seconds: dict[str, float]  # training time per model
    details: dict[str, str] = field(default_factory=dict)  # per model, for the summary
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return table(self.results)

    def text(self) -> str:
        d = self.data
        trained = ", ".join(f"{m} {self.seconds[m]:.1f} s{self.details.get(m, '')}"
                            for m in self.seconds)
        return "\n".join([
            f"data: {d['positives']:,} positives of {d['users']:,} users on {d['items']:,} "
            f"items ({d['events']:,} events, {d['source']}), fingerprint {d['fingerprint'][:12]}",
            f"split: leave-one-out, {d['test_users']:,} users tested, full ranking of "
            f"{d['items']:,} items",
            f"trained: {trained}", "", self.table, "", self.reason,
            f"artifact: {self.path}", ""])


def _tune_knn(rows: list[list[int]], n: int, valid: tuple[list[list[int]], np.ndarray]
              ) -> ItemKNN:
    """The grid point with the best validation HR@10 (the first of equals)."""
    best, best_hr = None, -1.0
    for window, recent in product(KNN_GRID["window"], KNN_GRID["recent"]):
        knn = ItemKNN(KNNConfig(window=window, recent=recent)).fit(rows, n)
        hr = evaluate(knn.scores, *valid)["hr@10"]
        if hr > best_hr:
            best, best_hr = knn, hr
    return best or ItemKNN().fit(rows, n)


def _decide(results: dict[str, dict[str, float]]) -> tuple[str, str]:
    hr = {m: r["hr@10"] for m, r in results.items()}

    def versus(model: str, base: str) -> str:
        gain = hr[model] - hr[base]
        relative = f" ({gain / hr[base]:+.0%})" if hr[base] > 0 else ""
        return f"{base} ({hr[base]:.4f}) by {gain:+.4f}{relative}"

    if hr["sasrec"] > hr["itemknn"] and hr["sasrec"] > hr["popularity"]:
        return "sasrec", (f"shipping sasrec: its validation HR@10 {hr['sasrec']:.4f} beats "
                          f"{versus('sasrec', 'itemknn')} and {versus('sasrec', 'popularity')}")
    base = "itemknn" if hr["itemknn"] >= hr["popularity"] else "popularity"
    lost = "itemknn" if hr["sasrec"] <= hr["itemknn"] else "popularity"
    return base, (f"shipping {base}: sasrec's validation HR@10 {hr['sasrec']:.4f} does not "
                  "beat "
                  f"{lost} ({hr[lost]:.4f}), and {base} is the better baseline")


def train_from(interactions: Sequence[Interaction], out: str | Path = ".rthub/models",
               name: str = "music", version: str | None = None,
               config: SASRecConfig | None = None, seed: int = 0,
               source: str = "events") -> tuple[Path, Report]:
    """Trains, evaluates (test figures decide what ships) and saves the winner, trained on
    the training part of the split; raises ``ValueError`` when the events cannot make a
    split (no user with 3 positives) and ``ArtifactError`` when the version exists."""
    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    artifact.check_name("name", name)
    artifact.check_name("version", version)
    seqs = sequences(interactions)
    split = leave_one_out(seqs)
    if not split.test:
        raise ValueError(f"no user has 3 positive events ({', '.join(sorted(POSITIVE))}); "
                         "nothing to evaluate on")
    vocab = Vocab.of(seqs)
    rows = [vocab.encode(items) for items in split.train.values()]
    valid, test = encode(split.valid, vocab), encode(split.test, vocab)
    n = len(vocab)
    cfg = config or SASRecConfig()

    started = time.perf_counter()
    pop = Popularity().fit(rows, n)
    seconds = {"popularity": time.perf_counter() - started}
    started = time.perf_counter()
    knn = _tune_knn(rows, n, valid)
    seconds["itemknn"] = time.perf_counter() - started
    started = time.perf_counter()
    model = train(rows, n, cfg, seed=seed, valid=valid)
    seconds["sasrec"] = time.perf_counter() - started
    scorers = {"popularity": pop.scores, "itemknn": knn.scores, "sasrec": model.scores}
    results = {m: evaluate(s, *test) for m, s in scorers.items()}
    valid_results = {m: evaluate(s, *valid) for m, s in scorers.items()}
    shipped, reason = _decide(valid_results)  # chosen on validation; test reports it

    counts = pop.counts
    data = {"source": source, "events": len(interactions), "users": len(seqs), "items": n,
            "positives": sum(len(s) for s in seqs.values()), "test_users": len(split.test),
            "fingerprint": fingerprint(interactions), "seed": seed}
    details = {"itemknn": f" (window {knn.config.window}, recent {knn.config.recent})",
               "sasrec": f" ({model.epochs_run} epochs, best {model.best_epoch})"}
    weights: dict[str, Any]
    if shipped == "sasrec":
        weights, hyper = model.state_dict(), cfg.hyperparameters()
    elif shipped == "itemknn":
        weights, hyper = knn.state(), asdict(knn.config)
    else:
        weights, hyper = pop.state(), {}
    metrics = {"k": 10, "split": "leave-one-out by time", "ranking": "full, history included",
               "test": results, "valid": valid_results, "shipped": shipped, "reason": reason,
               "train_seconds": seconds, "table": table(results)}
    path = artifact.save(out, name, version, kind=shipped, weights=weights, items=vocab.items,
                         counts=counts, hyperparameters=hyper, metrics=metrics,
                         fingerprint=data["fingerprint"], data=data)
    log.info("%s", reason)
    return path, Report(path, shipped, reason, results, valid_results, seconds, details, data)


def fit_sasrec(seqs: dict[str, list[str]], out: str | Path, name: str, version: str,
               config: SASRecConfig, seed: int = 0) -> Path:
    """SASRec alone on every sequence, saved as an artifact without an evaluation: a model
    to serve in tests and serving benchmarks, where its quality does not matter."""
    vocab = Vocab.of(seqs)
    rows = [vocab.encode(s) for s in seqs.values()]
    model = train(rows, len(vocab), config, seed=seed)
    counts = Popularity().fit(rows, len(vocab)).counts
    return artifact.save(out, name, version, kind="sasrec", weights=model.state_dict(),
                         items=vocab.items, counts=counts,
                         hyperparameters=config.hyperparameters(), metrics={},
                         fingerprint="not evaluated")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")  # one line, not the usage


def main(argv: list[str] | None = None, events: Sequence[tuple[str, str, float, str]] | None
         = None, described: str = "") -> int:
    """Exit status: 0 trained (whichever model shipped), 2 bad input (one line on stderr).
    ``events``: ``(user, item, unix seconds, event)`` rows read elsewhere (the hub's
    Postgres: ``rthub ml train --hub``), in place of ``--events`` or ``--synthetic``."""
    parser = _Parser(prog="rthub ml train", description="train popularity, item-kNN and "
                     "SASRec on listening events; write the artifact of the one that ships")
    source = parser.add_mutually_exclusive_group(required=events is None)
    source.add_argument("--events", type=Path, help="CSV: user_id,item_id,timestamp[,event]")
    source.add_argument("--synthetic", action="store_true", help="generated listening")
    parser.add_argument("--users", type=int, default=None, help="synthetic users (1000)")
    parser.add_argument("--items", type=int, default=300, help="synthetic items (300)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--out", type=Path, default=Path(".rthub/models"),
                        help="artifact root (.rthub/models)")
    parser.add_argument("--name", default="music", help="artifact name (music)")
    parser.add_argument("--version", default=None, help="default: the UTC time")
    parser.add_argument("--epochs", type=int, default=None, help="SASRec epochs at most")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.epochs} epochs; synthetic: {QUICK_USERS} users")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else SASRecConfig()
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be at least 1, got {args.epochs}")
        config = replace(config, epochs=args.epochs)
    try:
        if events is not None:
            events = [Interaction(u, i, ts, e) for u, i, ts, e in events]
            described = described or f"{len(events)} events"
        elif args.synthetic:
            users = args.users or (QUICK_USERS if args.quick else 1000)
            events = synthetic.generate(users=users, items=args.items, seed=args.seed)
            described = f"synthetic users={users} items={args.items} seed={args.seed}"
        elif not args.events.is_file():
            parser.error(f"{args.events}: no such file")
        else:
            events = read_csv(args.events)
            described = str(args.events)
        _, report = train_from(events, args.out, args.name, args.version, config, args.seed,
                               described)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    sys.stdout.write(report.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
