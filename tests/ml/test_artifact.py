"""Artifacts: what a version directory holds, a save/load round trip that recommends exactly
as the model in memory did, the exact error for each way a directory can be broken, and the
Recommender's contract (batches, unknown ids, empty histories, exclusions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml import artifact
from ml.artifact import ArtifactError, Recommender
from ml.baselines import ItemKNN, Popularity
from ml.data import sequences
from ml.sasrec import SASRecConfig, train
from ml.split import leave_one_out
from ml.synthetic import generate
from ml.vocab import Vocab

SMALL = SASRecConfig(dim=32, epochs=2, max_len=20)


@pytest.fixture(scope="module")
def trained():
    """Three small models of every kind on one small synthetic set (fast, not good)."""
    seqs = sequences(generate(users=120, items=96, seed=5))
    vocab = Vocab.of(seqs)
    rows = [vocab.encode(s) for s in leave_one_out(seqs).train.values()]
    pop = Popularity().fit(rows, len(vocab))
    knn = ItemKNN().fit(rows, len(vocab))
    sasrec = train(rows, len(vocab), SMALL, seed=1)
    histories = [seqs[u][-8:] for u in sorted(seqs)[:20]]
    return vocab, pop, knn, sasrec, histories


def save(root, trained, kind: str, version: str = "v1"):
    vocab, pop, knn, sasrec, _ = trained
    weights, hyper = {"popularity": (pop.state(), {}),
                      "itemknn": (knn.state(), {"window": 3}),
                      "sasrec": (sasrec.state_dict(), SMALL.hyperparameters())}[kind]
    return artifact.save(root, "music", version, kind=kind, weights=weights, items=vocab.items,
                         counts=pop.counts, hyperparameters=hyper,
                         metrics={"test": {kind: {"hr@10": 0.5}}}, fingerprint="f" * 64)


@pytest.mark.parametrize("kind", ["sasrec", "itemknn", "popularity"])
def test_a_loaded_artifact_recommends_exactly_as_the_trained_model(tmp_path, trained, kind):
    vocab, pop, knn, sasrec, histories = trained
    scorer = {"popularity": pop.scores, "itemknn": knn.scores, "sasrec": sasrec.scores}[kind]
    in_memory = Recommender("music", "v1", kind, vocab.items, pop.counts, scorer)
    loaded = artifact.load(save(tmp_path, trained, kind))
    assert (loaded.name, loaded.version, loaded.kind) == ("music", "v1", kind)
    assert loaded.items == vocab.items
    assert loaded.popular == in_memory.popular
    assert loaded.recommend(histories, 10) == in_memory.recommend(histories, 10)


def test_a_version_directory_holds_every_file(tmp_path, trained):
    path = save(tmp_path, trained, "sasrec")
    assert path == tmp_path / "music" / "v1"
    assert sorted(p.name for p in path.iterdir()) == sorted(artifact.FILES)
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "sasrec"
    assert config["max_len"] == 20
    assert config["hyperparameters"]["dim"] == 32
    assert config["created"].endswith("+00:00")
    assert json.loads((path / "metrics.json").read_text()) == {"test": {"sasrec": {"hr@10": 0.5}}}
    assert (path / "fingerprint.txt").read_text() == "f" * 64 + "\n"
    items = json.loads((path / "items.json").read_text())
    assert items["items"] == trained[0].items
    assert len(items["counts"]) == len(items["items"])
    assert (tmp_path / "music" / "LATEST").read_text() == "v1\n"
    assert [p.name for p in (tmp_path / "music").iterdir() if p.name.startswith(".")] == []


def test_latest_names_the_newest_version_and_a_version_is_never_overwritten(tmp_path, trained):
    save(tmp_path, trained, "popularity", "v1")
    save(tmp_path, trained, "itemknn", "v2")
    assert artifact.load_latest(tmp_path, "music").kind == "itemknn"
    with pytest.raises(ArtifactError) as caught:
        save(tmp_path, trained, "sasrec", "v2")
    assert str(caught.value) == (f"{tmp_path / 'music' / 'v2'}: already exists; pick another "
                                 "--version")
    with pytest.raises(ArtifactError, match=r"^artifact version '\.\./x' must be letters"):
        save(tmp_path, trained, "sasrec", "../x")


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(ArtifactError) as caught:
        artifact.load(tmp_path / "music" / "nope")
    assert str(caught.value) == f"{tmp_path / 'music' / 'nope'}: no such artifact directory"
    assert isinstance(caught.value, ValueError)


def test_a_missing_file_is_named(tmp_path, trained):
    path = save(tmp_path, trained, "sasrec")
    (path / "items.json").unlink()
    with pytest.raises(ArtifactError) as caught:
        artifact.load(path)
    assert str(caught.value) == f"{path}: missing items.json"


def test_corrupt_weights_are_named(tmp_path, trained):
    path = save(tmp_path, trained, "sasrec")
    (path / "weights.pt").write_bytes(b"not a zip archive at all")
    with pytest.raises(ArtifactError) as caught:
        artifact.load(path)
    assert str(caught.value) == f"{path / 'weights.pt'}: corrupt, not readable as torch weights"


def test_weights_of_another_catalogue_are_a_shape_mismatch(tmp_path, trained):
    path = save(tmp_path, trained, "sasrec")
    index = json.loads((path / "items.json").read_text())
    n = len(index["items"])
    (path / "items.json").write_text(json.dumps({"items": index["items"][:-1],
                                                 "counts": index["counts"][:-1]}))
    with pytest.raises(ArtifactError) as caught:
        artifact.load(path)
    assert str(caught.value) == (
        f"{path / 'weights.pt'}: 'items.weight' has shape ({n + 1}, 32), expected ({n}, 32) "
        f"from {n - 1} items in items.json and dim 32 in config.json")


def test_item_knn_weights_of_the_wrong_size_are_a_shape_mismatch(tmp_path, trained):
    path = save(tmp_path, trained, "itemknn")
    n = len(trained[0])
    state = {k: v[:-1, :-1] if k == "similarity" else v for k, v in trained[2].state().items()}
    import torch

    torch.save({k: torch.as_tensor(v) for k, v in state.items()}, path / "weights.pt")
    with pytest.raises(ArtifactError) as caught:
        artifact.load(path)
    assert str(caught.value) == (f"{path / 'weights.pt'}: 'similarity' has shape ({n - 1}, "
                                 f"{n - 1}), expected ({n}, {n}) from {n} items in items.json")


@pytest.fixture
def recommender(tmp_path, trained):
    return artifact.load(save(tmp_path, trained, "sasrec"))


def test_excluded_items_are_never_returned(recommender, trained):
    histories = trained[4][:5]
    first = recommender.recommend(histories, 10)
    exclude = [{item for item, _ in row[:5]} | {"no-such-track"} for row in first]
    again = recommender.recommend(histories, 10, exclude)
    for row, banned, before in zip(again, exclude, first, strict=True):
        assert len(row) == 10
        assert not banned & {item for item, _ in row}
        assert row[:5] == before[5:]  # the rest move up, in the same order


def test_an_empty_or_unknown_history_is_answered_from_popularity(recommender):
    got = recommender.recommend([[], ["no-such-track"]], 5)
    assert [item for item, _ in got[0]] == recommender.popular[:5]
    assert got[1] == got[0]
    assert recommender.recommend([[]], 3, [set(recommender.popular[:2])])[0][0][0] == (
        recommender.popular[2])


def test_unknown_ids_in_a_history_are_ignored(recommender, trained):
    history = trained[4][0]
    noisy = ["new-1", *history[:3], "new-2", *history[3:]]
    assert recommender.recommend([noisy], 10) == recommender.recommend([history], 10)


def test_scores_are_best_first_and_k_is_a_bound(recommender, trained):
    rows = recommender.recommend(trained[4][:3], 7)
    for row in rows:
        scores = [s for _, s in row]
        assert len(row) == 7
        assert scores == sorted(scores, reverse=True)
    everything = len(recommender.items)
    assert len(recommender.recommend([[]], everything + 5)[0]) == everything
    assert recommender.recommend([[]], 0) == [[]]
    with pytest.raises(ValueError, match=r"^exclude has 1 sets for 2 histories$"):
        recommender.recommend([[], []], 3, [set()])
    assert np.isfinite([s for row in rows for _, s in row]).all()


def test_a_tampered_item_index_or_config_is_named(tmp_path, trained):
    path = save(tmp_path, trained, "sasrec")
    index = json.loads((path / "items.json").read_text())
    (path / "items.json").write_text(json.dumps({"items": index["items"][::-1],
                                                 "counts": index["counts"]}))
    with pytest.raises(ArtifactError) as caught:
        artifact.load(path)
    assert str(caught.value) == f"{path / 'items.json'}: items must be distinct strings, sorted"
    (path / "items.json").write_text(json.dumps(index))
    config = json.loads((path / "config.json").read_text())
    config["hyperparameters"]["depth"] = 3
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=r"^.*config\.json: bad SASRec hyperparameters \("):
        artifact.load(path)
    (path / "config.json").write_text("{")
    with pytest.raises(ArtifactError, match=r"config\.json: not valid JSON"):
        artifact.load(path)
