"""Listening events as the recommender sees them: one ``Interaction`` per event, read from a
CSV export (``user_id,item_id,timestamp[,event]``), fingerprinted so an artifact names the
exact data it was trained on, and reduced to each user's ordered list of positive items.

What counts as a positive signal (``POSITIVE``): ``play``, ``completed`` and ``added`` say
the user wanted the track; ``skip`` (skipped early) and ``removed`` say they did not, and
``seek`` is movement inside a track already counted. One listen often emits several
positive events for the same track (``play`` then ``completed``, then maybe ``added``), so
consecutive positives of the same item collapse into one entry; a track played again after
another one is a new entry (music is repeated, and a repeat is a real next item).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

EVENTS = ("play", "skip", "completed", "seek", "added", "removed")
POSITIVE = frozenset({"play", "completed", "added"})
HEADER = ("user_id", "item_id", "timestamp", "event")


@dataclass(frozen=True, slots=True)
class Interaction:
    user: str
    item: str
    ts: float  # unix seconds
    event: str = "play"


def parse_time(text: str) -> float:
    """Unix seconds, or ISO 8601 (a time without an offset is UTC)."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"not a time: {text!r}")
        return seconds
    moment = datetime.fromisoformat(text)  # raises ValueError
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_csv(path: str | Path) -> list[Interaction]:
    """Every row of an export; a bad row is a ``ValueError`` naming file, line and column."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as file:  # a spreadsheet's BOM is fine
        rows = csv.reader(file)
        header = next(rows, None)
        if header is None or tuple(h.strip() for h in header) not in (HEADER[:3], HEADER):
            got = ",".join(header) if header else "nothing"
            raise ValueError(f"{path}, line 1: the header must be "
                             f"user_id,item_id,timestamp[,event], got {got!r}")
        width = len(header)
        out: list[Interaction] = []
        for row in rows:
            line = rows.line_num
            if not row:
                continue
            if len(row) != width:
                raise ValueError(f"{path}, line {line}: expected {width} columns, got {len(row)}")
            values = [v.strip() for v in row]
            for column, value in zip(HEADER[:2], values, strict=False):
                if not value:
                    raise ValueError(f"{path}, line {line}, column {column}: empty")
            try:
                ts = parse_time(values[2])
            except ValueError:
                raise ValueError(f"{path}, line {line}, column timestamp: {values[2]!r} is "
                                 "neither unix seconds nor ISO 8601") from None
            event = values[3] if width == 4 else "play"
            if event not in EVENTS:
                raise ValueError(f"{path}, line {line}, column event: {event!r} is not one of "
                                 f"{', '.join(EVENTS)}")
            out.append(Interaction(values[0], values[1], ts, event))
    return out


def fingerprint(interactions: Iterable[Interaction]) -> str:
    """sha256 of the events in a canonical order: the same events (in any order, with ISO or
    unix times for the same instant) give the same fingerprint."""
    digest = hashlib.sha256(b"rthub-ml-interactions-v1\n")
    for i in sorted(interactions, key=lambda i: (i.ts, i.user, i.item, i.event)):
        digest.update(json.dumps([i.user, i.item, repr(float(i.ts)), i.event]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sequences(interactions: Iterable[Interaction],
              positive: frozenset[str] = POSITIVE) -> dict[str, list[str]]:
    """Each user's positive items, oldest first (ties keep the input order), consecutive
    repeats of one item collapsed; users with no positive event are left out."""
    by_user: dict[str, list[tuple[float, int, str]]] = {}
    for n, i in enumerate(interactions):
        if i.event in positive:
            by_user.setdefault(i.user, []).append((i.ts, n, i.item))
    out: dict[str, list[str]] = {}
    for user, events in by_user.items():
        events.sort()
        items: list[str] = []
        for _, _, item in events:
            if not items or items[-1] != item:
                items.append(item)
        out[user] = items
    return out


def write_csv(interactions: Iterable[Interaction], path: str | Path) -> None:
    """The format ``read_csv`` reads back (unix seconds, event column always written)."""
    with Path(path).open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for i in interactions:
            writer.writerow([i.user, i.item, repr(float(i.ts)), i.event])
