"""The leave-one-out split, full-ranking HR/NDCG on hand-made rankings, the table, and the
two baselines on sequences small enough to score by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.baselines import ItemKNN, KNNConfig, Popularity
from ml.evaluate import evaluate, ranks, table
from ml.split import Case, leave_one_out


def test_the_last_positive_is_test_the_one_before_validation_the_rest_training():
    split = leave_one_out({"b": ["x", "y"], "a": ["p", "q", "r", "s", "t"],
                           "c": ["p", "q", "r"]})
    assert split.train == {"a": ["p", "q", "r"], "b": ["x", "y"], "c": ["p"]}
    assert split.valid == [Case("a", ["p", "q", "r"], "s"), Case("c", ["p"], "q")]
    assert split.test == [Case("a", ["p", "q", "r", "s"], "t"), Case("c", ["p", "q"], "r")]


def test_the_split_does_not_depend_on_the_order_users_come_in():
    seqs = {f"u{n}": [f"i{k}" for k in range(n % 5 + 1)] for n in range(20)}
    reversed_ = dict(reversed(list(seqs.items())))
    assert leave_one_out(seqs) == leave_one_out(reversed_)


def fixed(scores: list[list[float]]):
    """A scorer that answers the given rows whatever the histories."""
    return lambda histories: np.asarray(scores[:len(histories)], dtype=np.float32)


@pytest.mark.parametrize(("rank", "hr", "ndcg"), [
    (0, 1.0, 1.0), (1, 1.0, 1 / math.log2(3)), (9, 1.0, 1 / math.log2(11)), (10, 0.0, 0.0),
])
def test_a_known_rank_gives_the_known_hit_rate_and_ndcg(rank, hr, ndcg):
    scores = list(np.arange(20, 0, -1, dtype=np.float32))  # item n ranks n-th
    got = evaluate(fixed([scores]), [[3]], np.asarray([rank]))
    assert got == {"hr@10": hr, "ndcg@10": pytest.approx(ndcg), "users": 1}


def test_metrics_average_over_users():
    scores = [list(np.arange(20, 0, -1, dtype=np.float32))] * 3
    got = evaluate(fixed(scores), [[0], [0], [0]], np.asarray([0, 4, 15]))
    assert got["hr@10"] == pytest.approx(2 / 3)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(6) + 0) / 3)


def test_ties_count_against_the_target():
    assert ranks(np.zeros((1, 50)), np.asarray([7])).tolist() == [49]
    assert ranks(np.asarray([[1.0, 2.0, 2.0, 0.5]]), np.asarray([2])).tolist() == [1]


def test_items_in_the_history_are_ranked_like_any_other():
    scores = [[0.1, 0.9, 0.5, 0.2]]
    assert ranks(np.asarray(scores), np.asarray([1])).tolist() == [0]
    assert evaluate(fixed(scores), [[1, 1, 1]], np.asarray([1]))["hr@10"] == 1.0


def test_the_table_shows_each_models_gain_over_each_baseline():
    results = {"popularity": {"hr@10": 0.1, "ndcg@10": 0.05},
               "itemknn": {"hr@10": 0.5, "ndcg@10": 0.3},
               "sasrec": {"hr@10": 0.6, "ndcg@10": 0.4}}
    assert table(results) == "\n".join([
        "| model | HR@10 | NDCG@10 | HR@10 vs popularity | HR@10 vs itemknn |",
        "|---|---:|---:|---:|---:|",
        "| popularity | 0.1000 | 0.0500 | — | -0.4000 (-80%) |",
        "| itemknn | 0.5000 | 0.3000 | +0.4000 (+400%) | — |",
        "| sasrec | 0.6000 | 0.4000 | +0.5000 (+500%) | +0.1000 (+20%) |",
    ])


def test_popularity_scores_training_counts_for_everyone():
    pop = Popularity().fit([[0, 1, 1], [1, 2]], 4)
    assert pop.scores([[3], []]).tolist() == [[1, 3, 1, 0], [1, 3, 1, 0]]


def test_item_knn_relates_neighbours_in_a_sequence_cosine_normalised():
    # 0-1 are neighbours twice, 1-2 once; 3 never meets anyone; counts: 0:2, 1:2, 2:1
    knn = ItemKNN(KNNConfig(window=1, recent=1)).fit([[0, 1, 2], [0, 1], [3]], 4)
    assert knn.similarity[0, 1] == pytest.approx(2 / math.sqrt(2 * 2))
    assert knn.similarity[1, 2] == pytest.approx(1 / math.sqrt(2 * 1))
    assert knn.similarity[0, 2] == 0.0
    assert knn.similarity[3].sum() == 0.0
    assert np.diag(knn.similarity).tolist() == [0.0] * 4
    scores = knn.scores([[2, 0]])[0]  # the last item votes alone (recent=1)
    assert scores.argmax() == 1
    assert scores[2] < 1e-5  # only the popularity tie-break: 2 is not 0's neighbour


def test_item_knn_weighs_recent_items_most():
    knn = ItemKNN(KNNConfig(window=1, recent=2, decay=0.5)).fit([[0, 1], [2, 3]], 4)
    scores = knn.scores([[0, 2]])[0]  # 2 is newest (weight 1), 0 older (0.5)
    assert scores[3] == pytest.approx(2 * scores[1], rel=1e-4)
