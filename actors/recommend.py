"""Recommendations for a listening party whose queue runs low: the host service behind
``ctx.call("recommend", ...)``.

This is the plain interface the ML issue plugs its Serve deployment into: a coroutine
``(tenant, {seed, exclude, count}) -> {tracks}``. Until then the hub recommends the party's
own recent tracks back (most recent first, nothing already queued), which keeps a party
going and never reaches outside the hub.
"""

from __future__ import annotations

from typing import Any


async def replay_recent(tenant: str, request: dict[str, Any]) -> dict[str, Any]:
    """The seed tracks, most recent first, without repeats or queued ones."""
    exclude = {repr(t) for t in request.get("exclude", [])}
    tracks: list[Any] = []
    for track in reversed(request.get("seed", [])):
        if repr(track) not in exclude and track not in tracks:
            tracks.append(track)
    return {"tracks": tracks[: max(0, int(request.get("count", 5)))], "source": "recent"}


SERVICES = {"recommend": replay_recent}
