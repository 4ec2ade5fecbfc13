"""Times as the wire shows them (PROTOCOL.md: RFC 3339 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-25T17:00:00.000Z``."""
    return (datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))
