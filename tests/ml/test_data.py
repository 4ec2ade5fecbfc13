"""Listening events in and out of CSV, their fingerprint, the positive sequences, and the
synthetic generator's determinism."""

from __future__ import annotations

import random

import pytest

from ml.data import Interaction, fingerprint, read_csv, sequences, write_csv
from ml.synthetic import generate

JAN_1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def write(tmp_path, text: str):
    path = tmp_path / "events.csv"
    path.write_text(text)
    return path


def test_write_csv_reads_back_as_the_same_events(tmp_path):
    events = generate(users=20, items=48, seed=3)
    write_csv(events, tmp_path / "out.csv")
    assert read_csv(tmp_path / "out.csv") == events


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffuser_id,item_id,timestamp\nu1,a,1\n".encode())
    assert read_csv(path) == [Interaction("u1", "a", 1.0)]


def test_timestamps_may_be_unix_seconds_or_iso_8601(tmp_path):
    path = write(tmp_path, "user_id,item_id,timestamp\n"
                 f"u1,a,{JAN_1}\n"
                 "u1,b,2026-01-01T00:00:00Z\n"
                 "u1,c,2026-01-01T01:00:00+01:00\n"
                 "u1,d,2026-01-01 00:00:00\n")  # no offset: UTC
    events = read_csv(path)
    assert [e.ts for e in events] == [JAN_1] * 4
    assert {e.event for e in events} == {"play"}  # no event column: every row is a play


@pytest.mark.parametrize(("text", "message"), [
    ("user,item,ts\nu1,a,1\n",
     "{path}, line 1: the header must be user_id,item_id,timestamp[,event], "
     "got 'user,item,ts'"),
    ("", "{path}, line 1: the header must be user_id,item_id,timestamp[,event], got 'nothing'"),
    ("user_id,item_id,timestamp\nu1,a,1\nu1,b\n", "{path}, line 3: expected 3 columns, got 2"),
    ("user_id,item_id,timestamp\n,a,1\n", "{path}, line 2, column user_id: empty"),
    ("user_id,item_id,timestamp\nu1, ,1\n", "{path}, line 2, column item_id: empty"),
    ("user_id,item_id,timestamp,event\nu1,a,1,play\n\nu1,b,yesterday,play\n",
     "{path}, line 4, column timestamp: 'yesterday' is neither unix seconds nor ISO 8601"),
    ("user_id,item_id,timestamp\nu1,a,nan\n",
     "{path}, line 2, column timestamp: 'nan' is neither unix seconds nor ISO 8601"),
    ("user_id,item_id,timestamp,event\nu1,a,1,liked\n",
     "{path}, line 2, column event: 'liked' is not one of play, skip, completed, seek, added, "
     "removed"),
])
def test_a_bad_row_names_file_line_and_column(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"^") as caught:
        read_csv(path)
    assert str(caught.value) == message.format(path=path)


def test_the_fingerprint_is_of_the_events_not_their_order_or_time_format(tmp_path):
    events = generate(users=10, items=48, seed=1)
    shuffled = events[:]
    random.Random(0).shuffle(shuffled)
    assert fingerprint(shuffled) == fingerprint(events)
    as_iso = write(tmp_path, "user_id,item_id,timestamp,event\nu1,a,2026-01-01T00:00:00Z,play\n")
    assert fingerprint(read_csv(as_iso)) == fingerprint([Interaction("u1", "a", JAN_1)])
    assert fingerprint([Interaction("u1", "a", JAN_1)]) == (
        "db20c6510f1a2de1cf43a8978cce0033cde9fe784a26d91558a97d77f65b7e17")


def test_the_fingerprint_changes_with_any_field():
    base = [Interaction("u1", "a", JAN_1, "play")]
    changed = [[Interaction("u2", "a", JAN_1, "play")], [Interaction("u1", "b", JAN_1, "play")],
               [Interaction("u1", "a", JAN_1 + 1, "play")], [Interaction("u1", "a", JAN_1, "skip")],
               base * 2]
    prints = {fingerprint(base), *(fingerprint(c) for c in changed)}
    assert len(prints) == 1 + len(changed)


def test_positives_are_plays_completions_and_adds_in_time_order():
    events = [Interaction("u1", "c", 30, "completed"), Interaction("u1", "a", 10, "play"),
              Interaction("u1", "a", 11, "completed"),  # the same listen: one entry
              Interaction("u1", "b", 20, "skip"), Interaction("u1", "x", 25, "removed"),
              Interaction("u1", "y", 26, "seek"), Interaction("u1", "d", 40, "added"),
              Interaction("u1", "a", 50, "play"),  # played again later: a new entry
              Interaction("u2", "z", 5, "skip")]  # nothing positive: no sequence
    assert sequences(events) == {"u1": ["a", "c", "d", "a"]}
    assert sequences(events, positive=frozenset({"skip"})) == {"u1": ["b"], "u2": ["z"]}


def test_the_generator_is_deterministic_and_realistic():
    events = generate(users=50, items=96, seed=7)
    assert events == generate(users=50, items=96, seed=7)
    assert events != generate(users=50, items=96, seed=8)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    kinds = {e.event for e in events}
    assert kinds == {"play", "completed", "skip", "seek", "added", "removed"}
    seqs = sequences(events)
    assert len(seqs) == 50
    repeats = sum(len(s) - len(set(s)) for s in seqs.values())
    assert repeats > 0  # people replay tracks
    with pytest.raises(ValueError, match=r"^30 items are too few for 2 clusters"):
        generate(users=1, items=30, clusters=2)
