"""The two models SASRec has to beat to ship: most popular, and item-to-item neighbours.

``Popularity`` scores every item by its count of positives in training, the same for all
users: what a new user gets, and a floor any personal model must clear.

``ItemKNN`` is classic item-based collaborative filtering made session-aware: two items are
related by how often they occur within ``window`` positions of each other in a user's
sequence (each pair once per occurrence, in either order), cosine-normalised by the items'
own counts (``c_ij / sqrt(n_i * n_j)``) so a hit does not look related to everything; each
item keeps its ``neighbours`` most similar items. A history is scored by its ``recent`` last
items, the newest weighing most (weight ``decay ** age``). It sees which tracks go together
and what was just played, but not the order within a window, which is what SASRec adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _counts(train_sequences: list[list[int]], n_items: int) -> np.ndarray:
    flat = [i for seq in train_sequences for i in seq]
    return np.bincount(np.asarray(flat, dtype=np.int64), minlength=n_items).astype(np.float32)


class Popularity:
    kind = "popularity"

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, train_sequences: list[list[int]], n_items: int) -> Popularity:
        self.counts = _counts(train_sequences, n_items)
        return self

    def scores(self, histories: list[list[int]]) -> np.ndarray:
        """[batch, n_items]: the training counts, whatever the history."""
        return np.broadcast_to(self.counts, (len(histories), len(self.counts))).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts = np.asarray(state["counts"], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class KNNConfig:
    window: int = 3  # items this close in a sequence co-occur
    neighbours: int = 100  # kept per item
    recent: int = 5  # last history items that vote
    decay: float = 0.6  # weight of a vote per step back in the history


class ItemKNN:
    kind = "itemknn"

    def __init__(self, config: KNNConfig | None = None) -> None:
        self.config = config or KNNConfig()
        self.similarity = np.zeros((0, 0), dtype=np.float32)
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, train_sequences: list[list[int]], n_items: int) -> ItemKNN:
        cfg = self.config
        self.counts = _counts(train_sequences, n_items)
        flat = np.asarray([i for seq in train_sequences for i in seq], dtype=np.int64)
        owner = np.repeat(np.arange(len(train_sequences)), [len(s) for s in train_sequences])
        pairs = np.zeros(n_items * n_items, dtype=np.float64)
        for gap in range(1, cfg.window + 1):
            a, b = flat[:-gap], flat[gap:]
            keep = (owner[:-gap] == owner[gap:]) & (a != b)
            pairs += np.bincount(a[keep] * n_items + b[keep], minlength=n_items * n_items)
        co = pairs.reshape(n_items, n_items)
        co += co.T
        norm = np.sqrt(np.maximum(self.counts, 1.0))
        sim = co / norm[:, None] / norm[None, :]
        if cfg.neighbours < n_items:
            cut = np.argpartition(-sim, cfg.neighbours, axis=1)[:, cfg.neighbours:]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.similarity = sim.astype(np.float32)
        return self

    def scores(self, histories: list[list[int]]) -> np.ndarray:
        """[batch, n_items]: decayed sum of the recent items' neighbour rows, plus a
        popularity term too small to reorder anything but ties (an empty history, or items
        no recent item points to, fall back to popularity)."""
        cfg = self.config
        weights = np.zeros((len(histories), len(self.counts)), dtype=np.float32)
        for row, history in enumerate(histories):
            for age, item in enumerate(reversed(history[-cfg.recent:])):
                weights[row, item] += cfg.decay ** age
        tie_break = self.counts / (self.counts.max(initial=0.0) + 1.0) * 1e-6
        return weights @ self.similarity + tie_break

    def state(self) -> dict[str, np.ndarray]:
        return {"similarity": self.similarity, "counts": self.counts,
                "config": np.asarray([self.config.window, self.config.neighbours,
                                      self.config.recent, self.config.decay], dtype=np.float64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        window, neighbours, recent, decay = (float(v) for v in state["config"])
        self.config = KNNConfig(int(window), int(neighbours), int(recent), decay)
        self.similarity = np.asarray(state["similarity"], dtype=np.float32)
        self.counts = np.asarray(state["counts"], dtype=np.float32)
