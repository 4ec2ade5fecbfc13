"""Maintenance announcements as ops write them: ``rthub maintenance --message TEXT --at WHEN
[--duration 30m] [--tenant t]`` and the body of ``POST /v1/admin/maintenance``, checked into
the content of the ``system.maintenance`` frame (PROTOCOL.md "System").

WHEN is RFC 3339 (``2027-01-05T22:00:00Z``; an offset is converted to UTC), ``now``, or
``+10m`` from now; a duration is ``90s``, ``30m``, ``2h``, ``1h30m`` or plain seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rthub import durations
from rthub.config import Settings

MESSAGE_MAX = 2_000
DURATION_MAX_S = 30 * 86_400


class BadAnnouncement(ValueError):
    """An announcement ops must correct; the message says how."""


def duration_s(raw: str | int) -> int:
    """Seconds in ``raw`` (``30m``, ``1h30m``, ``90``), from 1 s to 30 days."""
    seconds = durations.seconds(raw)
    if seconds is None:
        raise BadAnnouncement(f"duration must look like 90s, 30m, 2h or 1h30m, got {raw!r}")
    if not 0 < seconds <= DURATION_MAX_S:
        raise BadAnnouncement(f"duration must be from 1 s to 30 days, got {raw!r}")
    return seconds


def when(raw: str, now: datetime | None = None) -> datetime:
    """The UTC time ``raw`` names: RFC 3339, ``now``, or ``+<duration>`` from now."""
    now = now or datetime.now(UTC)
    text = raw.strip()
    if text.lower() == "now":
        return now
    if text.startswith("+"):
        try:
            return now + timedelta(seconds=duration_s(text[1:]))
        except BadAnnouncement:
            raise BadAnnouncement(f"at (--at) +DURATION must look like +10m or +1h30m, "
                                  f"got {raw!r}") from None
    try:
        at = datetime.fromisoformat(text.replace("z", "Z"))
        if at.tzinfo is not None:
            return at.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: year 9999 with a negative offset
        pass
    raise BadAnnouncement(f"at (--at) must be RFC 3339 with a zone (2027-01-05T22:00:00Z), "
                          f"'now' or '+10m', got {raw!r}")


def content(message: Any, at: Any, duration: Any = None,
            now: datetime | None = None) -> dict[str, Any]:
    """The frame's content, ``{message, at, duration_s?}`` (``at`` in RFC 3339 UTC)."""
    if not isinstance(message, str) or not message.strip():
        raise BadAnnouncement("a message (--message TEXT) is required")
    if len(message) > MESSAGE_MAX:
        raise BadAnnouncement(f"the message is over {MESSAGE_MAX} characters")
    if not isinstance(at, str) or not at.strip():
        raise BadAnnouncement("at (--at) is required: RFC 3339, 'now' or '+10m'")
    moment = when(at, now)
    found: dict[str, Any] = {
        "message": message.strip(),
        "at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, str | int):
            raise BadAnnouncement("duration must be a text like 30m or seconds")
        found["duration_s"] = duration_s(duration)
    return found


# -- the command ------------------------------------------------------------------------------
def add_command(commands: Any) -> None:
    """``rthub maintenance``'s parser (required values are checked by ``run``: one line,
    exit 1, as for every wrong value)."""
    parser = commands.add_parser("maintenance", help="announce maintenance to every "
                                 "connected client of a tenant")
    parser.add_argument("--message", help="what clients show")
    parser.add_argument("--at", help="when: RFC 3339, 'now' or '+10m'")
    parser.add_argument("--duration", default=None, help="how long: 90s, 30m, 2h, 1h30m")
    parser.add_argument("--tenant", default="default")


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the embedded Redis of a hub ``rthub up`` runs from this data dir."""
    from fanout.embedded import recorded_url

    url = settings.redis_url or recorded_url(Path(settings.data_dir))
    if url is None:
        raise BadAnnouncement(f"no Redis to announce through: set REDIS_URL, or start the "
                              f"hub (`rthub up`) with RTHUB_DATA_DIR={settings.data_dir}")
    return url


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``rthub maintenance``: publish, export, say how many replicas heard it."""
    from redis.exceptions import RedisError

    from fanout.connect import aclient
    from fanout.exports import export_policy
    from fanout.maintenance import announce

    try:
        found = content(args.message, args.at, args.duration)
        url = redis_url(settings)
    except BadAnnouncement as err:
        sys.exit(f"rthub: {err}")

    async def send() -> int:
        client = await aclient(url)
        try:
            return await announce(client, args.tenant, found, export_policy(settings))
        finally:
            await client.aclose()

    try:
        replicas = asyncio.run(send())
    except (RedisError, OSError) as err:
        sys.exit(f"rthub: could not announce through Redis at {url}: {err}")
    sys.stdout.write(f"maintenance announced to tenant {args.tenant!r} at {found['at']}"
                     f" ({replicas} gateway replica(s) listening)\n")
    return 0
