"""``rthub ml train`` end to end (synthetic and CSV), its one-line errors with exit status 2,
and the rule that decides what ships."""

from __future__ import annotations

import json

import pytest

from ml import artifact
from ml.data import write_csv
from ml.synthetic import generate
from ml.train import _decide, main


def test_quick_synthetic_training_writes_an_artifact_and_prints_the_table(tmp_path, capsys):
    assert main(["--synthetic", "--quick", "--out", str(tmp_path), "--version", "v1"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "music" / "v1"
    assert sorted(p.name for p in path.iterdir()) == sorted(artifact.FILES)
    assert "| model | HR@10 | NDCG@10 | HR@10 vs popularity | HR@10 vs itemknn |" in out
    for model in ("popularity", "itemknn", "sasrec"):
        assert f"\n| {model} | 0." in out
    assert "data: " in out
    assert "300 users on 300 items" in out
    assert "6 epochs" in out
    assert f"artifact: {path}\n" in out
    # Six epochs on 300 users are not enough for SASRec: the better baseline ships, and why.
    assert "shipping itemknn: sasrec's validation HR@10 " in out
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "itemknn"
    assert config["data"]["users"] == 300
    metrics = json.loads((path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"popularity", "itemknn", "sasrec"}
    assert metrics["table"] in out
    assert artifact.load(path).recommend([[]], 3)[0]


def test_training_from_a_csv_export(tmp_path, capsys):
    csv = tmp_path / "listens.csv"
    write_csv(generate(users=60, items=96, seed=2), csv)
    assert main(["--events", str(csv), "--out", str(tmp_path), "--epochs", "1",
                 "--name", "trial", "--version", "v1"]) == 0
    assert f" events, {csv})" in capsys.readouterr().out
    assert (tmp_path / "trial" / "v1" / "fingerprint.txt").is_file()


def run_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    return captured.err


def test_bad_input_is_one_line_on_stderr_and_status_2(tmp_path, capsys):
    prefix = "rthub ml train: error: "
    missing = tmp_path / "nope.csv"
    assert run_error(capsys, ["--events", str(missing)]) == f"{prefix}{missing}: no such file\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,a,soon\n")
    assert run_error(capsys, ["--events", str(bad)]) == (
        f"{prefix}{bad}, line 2, column timestamp: 'soon' is neither unix seconds nor ISO 8601\n")
    few = tmp_path / "few.csv"
    few.write_text("user_id,item_id,timestamp,event\nu1,a,1,play\nu1,b,2,play\nu1,c,3,skip\n")
    assert run_error(capsys, ["--events", str(few)]) == (
        f"{prefix}no user has 3 positive events (added, completed, play); nothing to evaluate "
        "on\n")
    assert run_error(capsys, []) == (
        f"{prefix}one of the arguments --events --synthetic is required\n")
    assert run_error(capsys, ["--synthetic", "--epochs", "0"]) == (
        f"{prefix}--epochs must be at least 1, got 0\n")
    assert run_error(capsys, ["--synthetic", "--items", "10"]) == (
        f"{prefix}10 items are too few for 1 clusters (24 each at least)\n")
    assert run_error(capsys, ["--synthetic", "--version", "a/b"]) == (
        f"{prefix}artifact version 'a/b' must be letters, digits, '.', '_' or '-', not "
        "starting with '.', '_' or '-'\n")


def test_an_existing_version_is_refused(tmp_path, capsys):
    (tmp_path / "music" / "v1").mkdir(parents=True)
    err = run_error(capsys, ["--synthetic", "--users", "40", "--epochs", "1", "--out",
                             str(tmp_path), "--version", "v1"])
    assert err == (f"rthub ml train: error: {tmp_path / 'music' / 'v1'}: already exists; "
                   "pick another --version\n")


def figures(pop: float, knn: float, sasrec: float) -> dict[str, dict[str, float]]:
    return {"popularity": {"hr@10": pop}, "itemknn": {"hr@10": knn}, "sasrec": {"hr@10": sasrec}}


def test_sasrec_ships_only_when_it_beats_both_baselines():
    assert _decide(figures(0.1, 0.5, 0.6)) == ("sasrec", (
        "shipping sasrec: its validation HR@10 0.6000 beats itemknn (0.5000) by +0.1000 (+20%) and "
        "popularity (0.1000) by +0.5000 (+500%)"))
    assert _decide(figures(0.1, 0.6, 0.6)) == ("itemknn", (
        "shipping itemknn: sasrec's validation HR@10 0.6000 does not beat itemknn (0.6000), "
        "and itemknn is the better baseline"))
    assert _decide(figures(0.5, 0.3, 0.4)) == ("popularity", (
        "shipping popularity: sasrec's validation HR@10 0.4000 does not beat popularity "
        "(0.5000), and popularity is the better baseline"))
