"""A trained model on disk, and the ``Recommender`` that serves it.

``<root>/<name>/<version>/`` holds:

- ``weights.pt``: the SASRec state dict, or a baseline's arrays (popularity counts;
  item-kNN's similarity matrix), as tensors (``torch.load(weights_only=True)``);
- ``items.json``: ``{"items": [...], "counts": [...]}``, the item of each row and its
  positives in training (the popularity fallback of every kind);
- ``config.json``: kind, hyperparameters, ``max_len``, creation time, data sizes;
- ``metrics.json``: the evaluation of every model trained alongside, baselines included;
- ``fingerprint.txt``: ``ml.data.fingerprint`` of the events it was trained on.

A version is written to a temporary directory beside it and renamed into place, so a reader
sees all of it or none; ``<root>/<name>/LATEST`` then names it. Loading is CPU-only and
checks every file before use: an ``ArtifactError`` names the path and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.baselines import ItemKNN, Popularity
from ml.sasrec import SASRec, SASRecConfig
from ml.vocab import Vocab

FORMAT = 1
KINDS = ("sasrec", "itemknn", "popularity")
FILES = ("weights.pt", "items.json", "config.json", "metrics.json", "fingerprint.txt")
POPULAR = 100  # fallback items kept in Recommender.popular
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ArtifactError(ValueError):
    """An artifact directory that cannot be written or served as it is."""


class Recommender:
    """Top-k items for batches of listening histories, from any kind of model.

    ``scorer`` maps histories (item rows) to scores over all items. Unknown ids in a
    history are ignored; a history with no known item is answered from popularity (scores:
    shares of training positives); ``exclude`` items are never returned (fewer than ``k``
    come back if too few remain). Scores rank items within one answer; they are not
    comparable across kinds or between a model answer and a popularity one.
    """

    def __init__(self, name: str, version: str, kind: str, items: list[str],
                 counts: np.ndarray, scorer: Callable[[list[list[int]]], np.ndarray],
                 config: dict[str, Any] | None = None) -> None:
        self.name, self.version, self.kind = name, version, kind
        self.vocab = Vocab(items)
        if self.vocab.items != items:
            raise ArtifactError(f"{name}/{version}: items must be sorted and distinct")
        self.items = items
        self.counts = np.asarray(counts, dtype=np.float32)
        self.scorer = scorer
        self.config = config or {}
        ranked = sorted(range(len(items)), key=lambda n: (-self.counts[n], items[n]))
        self.popular: list[str] = [items[n] for n in ranked[:POPULAR]]
        self._fallback = self.counts / max(float(self.counts.sum()), 1.0)

    def recommend(self, histories: list[list[str]], k: int,
                  exclude: list[set[str]] | None = None) -> list[list[tuple[str, float]]]:
        """For each history (oldest first), up to ``k`` (item, score), best first."""
        if exclude is not None and len(exclude) != len(histories):
            raise ValueError(f"exclude has {len(exclude)} sets for {len(histories)} histories")
        rows = [self.vocab.encode(h) for h in histories]
        known = [n for n, r in enumerate(rows) if r]
        scores = np.empty((len(rows), len(self.items)), dtype=np.float64)
        scores[:] = self._fallback
        if known:
            scores[known] = self.scorer([rows[n] for n in known])
        out: list[list[tuple[str, float]]] = []
        for n, row in enumerate(scores):
            for item in (exclude[n] if exclude else ()):
                if item in self.vocab.index:
                    row[self.vocab.index[item]] = -np.inf
            take = min(max(k, 0), len(row))
            best = np.argpartition(-row, take - 1)[:take] if take else np.zeros(0, np.int64)
            best = best[np.lexsort((best, -row[best]))]  # by score, then row: stable
            out.append([(self.items[i], float(row[i])) for i in best if np.isfinite(row[i])])
        return out


def check_name(what: str, value: str) -> None:
    if not _NAME.match(value):
        raise ArtifactError(f"artifact {what} {value!r} must be letters, digits, '.', '_' or "
                            "'-', not starting with '.', '_' or '-'")


def save(root: str | Path, name: str, version: str, *, kind: str,
         weights: dict[str, Any], items: list[str], counts: np.ndarray,
         hyperparameters: dict[str, Any], metrics: dict[str, Any], fingerprint: str,
         data: dict[str, Any] | None = None) -> Path:
    """Writes ``<root>/<name>/<version>/`` atomically and points LATEST at it."""
    check_name("name", name)
    check_name("version", version)
    if kind not in KINDS:
        raise ArtifactError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")
    home = Path(root) / name
    final = home / version
    if final.exists():
        raise ArtifactError(f"{final}: already exists; pick another --version")
    home.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "name": name, "version": version, "kind": kind,
              "hyperparameters": hyperparameters, "max_len": hyperparameters.get("max_len"),
              "n_items": len(items), "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "torch": torch.__version__, "data": data or {}}
    temp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=home))
    try:
        tensors = {k: torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor)
                   else v.detach().cpu() for k, v in weights.items()}
        torch.save(tensors, temp / "weights.pt")
        _write_json(temp / "items.json", {"items": items, "counts": [float(c) for c in counts]})
        _write_json(temp / "config.json", config)
        _write_json(temp / "metrics.json", metrics)
        (temp / "fingerprint.txt").write_text(fingerprint + "\n")
        os.chmod(temp, 0o755)
        temp.rename(final)
    except BaseException as err:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(err, OSError) and final.exists():  # another writer got there first
            raise ArtifactError(f"{final}: already exists; pick another --version") from None
        raise
    latest = home / f".LATEST.{os.getpid()}"
    latest.write_text(version + "\n")
    latest.replace(home / "LATEST")
    return final


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None


def load_latest(root: str | Path, name: str) -> Recommender:
    """The version ``<root>/<name>/LATEST`` names."""
    pointer = Path(root) / name / "LATEST"
    if not pointer.is_file():
        raise ArtifactError(f"{pointer}: missing; no artifact of {name!r} was saved")
    return load(pointer.parent / pointer.read_text().strip())


def load(path: str | Path) -> Recommender:
    """The model at ``path`` (a version directory), on CPU."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such artifact directory")
    for file in FILES:
        if not (path / file).is_file():
            raise ArtifactError(f"{path}: missing {file}")
    config = _read_json(path / "config.json")
    index = _read_json(path / "items.json")
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind not in KINDS:
        raise ArtifactError(f"{path / 'config.json'}: unknown model kind {kind!r}")
    try:
        items, counts = list(index["items"]), np.asarray(index["counts"], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{path / 'items.json'}: needs 'items' and 'counts' lists") from None
    if len(counts) != len(items):
        raise ArtifactError(f"{path / 'items.json'}: {len(items)} items but "
                            f"{len(counts)} counts")
    if not all(isinstance(i, str) for i in items) or items != sorted(set(items)):
        raise ArtifactError(f"{path / 'items.json'}: items must be distinct strings, sorted")
    try:
        weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as err:
        raise ArtifactError(f"{path / 'weights.pt'}: corrupt, not readable as torch "
                            "weights") from err
    if not isinstance(weights, dict):
        raise ArtifactError(f"{path / 'weights.pt'}: corrupt, not a dict of tensors")
    scorer = _scorer(path, kind, config.get("hyperparameters") or {}, weights, len(items))
    return Recommender(config.get("name", path.parent.name), config.get("version", path.name),
                       kind, items, counts, scorer, config)


def _expect(path: Path, weights: dict[str, Any], shapes: dict[str, tuple[int, ...]],
            source: str) -> None:
    """Every expected tensor present with its shape, and nothing else."""
    file = path / "weights.pt"
    for key, shape in shapes.items():
        if key not in weights:
            raise ArtifactError(f"{file}: missing tensor {key!r}")
        got = tuple(weights[key].shape)
        if got != shape:
            raise ArtifactError(f"{file}: {key!r} has shape {got}, expected {shape} "
                                f"from {source}")
    extra = sorted(set(weights) - set(shapes))
    if extra:
        raise ArtifactError(f"{file}: unexpected tensors {', '.join(map(repr, extra))}")


def _scorer(path: Path, kind: str, hyper: dict[str, Any], weights: dict[str, Any],
            n: int) -> Callable[[list[list[int]]], np.ndarray]:
    if kind == "popularity":
        _expect(path, weights, {"counts": (n,)}, f"{n} items in items.json")
        model = Popularity()
        model.load_state({k: v.numpy() for k, v in weights.items()})
        return model.scores
    if kind == "itemknn":
        _expect(path, weights, {"similarity": (n, n), "counts": (n,), "config": (4,)},
                f"{n} items in items.json")
        knn = ItemKNN()
        knn.load_state({k: v.numpy() for k, v in weights.items()})
        return knn.scores
    try:
        cfg = SASRecConfig(**hyper)
        sasrec = SASRec(n, cfg)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ArtifactError(f"{path / 'config.json'}: bad SASRec hyperparameters "
                            f"({err})") from None
    _expect(path, weights, {k: tuple(v.shape) for k, v in sasrec.state_dict().items()},
            f"{n} items in items.json and dim {cfg.dim} in config.json")
    sasrec.load_state_dict(weights)
    sasrec.eval()
    return sasrec.scores
