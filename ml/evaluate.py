"""Full-ranking evaluation: every model ranks the whole catalogue for every test user, and we
read off where the held-out next item landed. No sampled negatives (sampling 100 negatives
flatters every model and can even reorder them).

- HR@k: the share of users whose target is in the top k.
- NDCG@k: ``1 / log2(rank + 2)`` for a target at 0-based ``rank < k``, else 0, averaged.
- Ties count against the target: its rank is the number of other items scoring at least as
  much, so a model that scores everything equally ranks it last, not first.
- Items already in the history are NOT excluded. People replay tracks, and the next listen
  is often one they have heard (about half the test targets of the synthetic data are);
  excluding the history would make those targets unreachable and reward models for never
  repeating. The rule is the same for every model; callers that do not want repeats (a
  party queue) pass them to ``Recommender.recommend(exclude=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ml.split import Case
from ml.vocab import Vocab

Scorer = Callable[[list[list[int]]], np.ndarray]  # histories -> [batch, n_items]
BASELINES = ("popularity", "itemknn")


def encode(cases: Sequence[Case], vocab: Vocab) -> tuple[list[list[int]], np.ndarray]:
    """Histories as rows (unknown ids dropped) and the targets' rows."""
    histories = [vocab.encode(c.history) for c in cases]
    targets = np.asarray([vocab.index[c.target] for c in cases], dtype=np.int64)
    return histories, targets


def ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target among all items, ties against the target."""
    scores = np.nan_to_num(scores, nan=-np.inf)
    mine = scores[np.arange(len(targets)), targets][:, None]
    return (scores >= mine).sum(axis=1) - 1


def metrics(rank: np.ndarray, k: int = 10) -> dict[str, float]:
    hit = rank < k
    gain = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return {f"hr@{k}": float(hit.mean()) if len(rank) else 0.0,
            f"ndcg@{k}": float(gain.mean()) if len(rank) else 0.0,
            "users": len(rank)}


def evaluate(scorer: Scorer, histories: list[list[int]], targets: np.ndarray, k: int = 10,
             batch: int = 512) -> dict[str, float]:
    """HR@k and NDCG@k of ``scorer`` over all items, in batches (memory: batch x items)."""
    rank = np.concatenate([ranks(scorer(histories[s:s + batch]), targets[s:s + batch])
                           for s in range(0, len(targets), batch)] or [np.zeros(0, np.int64)])
    return metrics(rank, k)


def _gain(value: float, base: float) -> str:
    relative = f" ({(value - base) / base:+.0%})" if base > 0 else ""
    return f"{value - base:+.4f}{relative}"


def table(results: dict[str, dict[str, float]], k: int = 10,
          baselines: Sequence[str] = BASELINES) -> str:
    """A markdown table: each model's HR@k and NDCG@k, and its HR@k gain over each baseline
    (absolute, then relative)."""
    present = [b for b in baselines if b in results]
    head = ["model", f"HR@{k}", f"NDCG@{k}", *(f"HR@{k} vs {b}" for b in present)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, row in results.items():
        hr, ndcg = row[f"hr@{k}"], row[f"ndcg@{k}"]
        gains = ["—" if b == name else _gain(hr, results[b][f"hr@{k}"]) for b in present]
        lines.append(f"| {name} | {hr:.4f} | {ndcg:.4f} | " + " | ".join(gains) + " |")
    return "\n".join(lines)

