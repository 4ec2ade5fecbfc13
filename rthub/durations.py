"""Durations as people type them on a command line or in a request: ``90`` (seconds),
``90s``, ``15m``, ``2h``, ``7d``, or compounds such as ``1h30m``. One reading for every
command and route, so ``--ttl`` and ``--duration`` accept the same things."""

from __future__ import annotations

import re

_WHOLE = re.compile(r"^(?:\d+[dhms])+$")
_PARTS = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}


def seconds(raw: str | int) -> int | None:
    """The seconds ``raw`` names, or None when it is not a duration (the caller says why
    in its own words)."""
    text = str(raw).strip().lower()
    if text.isdigit():
        return int(text)
    if _WHOLE.match(text):
        return sum(int(n) * _UNITS[unit] for n, unit in _PARTS.findall(text))
    return None
