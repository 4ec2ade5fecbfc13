"""Digests: LOW notifications of a category (and NORMAL ones where the user chose it) wait
and go out as one message per user and category, at the end of a window (``window_s``,
windows aligned to the epoch so every notification of one finds the same key without a
lookup) or at a fixed local time (``at``, in the user's time zone). In-app they arrive at
once, silent; the digest is what alerts."""

from __future__ import annotations

import zoneinfo
from typing import Any

import actors.kinds.inbox_prefs as prefs_of
from notify.templates import Templates

LINES = 10  # titles listed in a digest's body; the rest are counted


def slot(user: str, category: str, digest: dict[str, Any], timezone: str | None,
         now_ms: int) -> tuple[str, int]:
    """(the digest's key, when it goes out)."""
    if "window_s" in digest:
        window = digest["window_s"] * 1000
        start = now_ms // window * window
        return f"{user}\x1f{category}\x1fw{start}", start + window
    due = prefs_of.next_local_ms(digest["at"], zoneinfo.ZoneInfo(timezone or "UTC"), now_ms)
    return f"{user}\x1f{category}\x1fat{due}", due


def compose(titles: list[str], templates: Templates, locale: str | None) -> tuple[str, str]:
    """(title, body) of the digest of ``titles``, in the user's locale."""
    _, title, body = templates.render(
        "digest", {"count": len(titles), "lines": titles[:LINES],
                   "more": max(0, len(titles) - LINES)}, locale)
    return title, body
