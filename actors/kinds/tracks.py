"""How a track is named outside the entity that holds it (listening events, models): the
protocol lets a client send a track as any JSON value."""

from __future__ import annotations

import json
from typing import Any


def track_id(track: Any) -> str:
    """Its ``id`` when it is an object with one, the string itself, else its canonical
    JSON."""
    if isinstance(track, dict) and isinstance(track.get("id"), str | int):
        return str(track["id"])
    if isinstance(track, str):
        return track
    return json.dumps(track, sort_keys=True, separators=(",", ":"))
