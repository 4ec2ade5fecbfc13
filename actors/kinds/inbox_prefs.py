"""A user's notification preferences, kept by their inbox: the locale templates are rendered
in, the time zone quiet hours are read in, the quiet hours (non-CRITICAL notifications
arrive silent in-app and wait for their end on the other channels), categories muted per
channel (CRITICAL ones are never muted), and digests per category (LOW ones, and NORMAL ones
when chosen, merged into one message per window or at a fixed local time)."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Any

from rthub.errors import BadRequest

CHANNELS = ("in_app", "push", "email", "sms", "pusher")
CRITICAL = 3
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


def check(changes: dict[str, Any]) -> dict[str, Any]:
    """The preferences a client sent, checked and in stored form."""
    out: dict[str, Any] = {}
    if (locale := changes.get("locale")) is not None:
        if not isinstance(locale, str) or not _LOCALE.match(locale):
            raise BadRequest("'locale' must look like 'fr' or 'fr_CA'")
        out["locale"] = locale
    if (zone := changes.get("timezone")) is not None:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise BadRequest(f"'timezone' must be an IANA time zone such as Europe/Paris, "
                             f"got {str(zone)[:40]!r}") from None
        out["timezone"] = zone
    if (quiet := changes.get("quiet_hours")) is not None:
        clocks = [quiet.get(k) for k in ("start", "end")] if isinstance(quiet, dict) else []
        found = [_CLOCK.match(c) for c in clocks if isinstance(c, str)]
        if len(found) != 2 or not all(found) or clocks[0] == clocks[1]:
            raise BadRequest("'quiet_hours' must be {start: 'HH:MM', end: 'HH:MM'}, two "
                             "different times (a window may cross midnight)")
        out["quiet"] = [int(m[1]) * 60 + int(m[2]) for m in found if m]
    return out


def toggled(mute: dict[str, list[str]], category: Any, channel: Any, enabled: Any
            ) -> dict[str, list[str]]:
    """``mute`` with ``category`` turned on (``enabled``) or off on ``channel``."""
    if not isinstance(category, str) or not 1 <= len(category) <= 64:
        raise BadRequest("'category', 'channel' and 'enabled' go together: 'category' must be "
                         "1 to 64 characters")
    if channel not in CHANNELS:
        raise BadRequest(f"'channel' must be one of {', '.join(CHANNELS)}")
    if not isinstance(enabled, bool):
        raise BadRequest("'enabled' must be true or false")
    off = set(mute.get(category, ())) - {channel} | (set() if enabled else {channel})
    return {**{k: v for k, v in mute.items() if k != category},
            **({category: sorted(off)} if off else {})}


def quiet_now(prefs: dict[str, Any], now_ms: int) -> bool:
    """Whether ``now_ms`` falls in the user's quiet hours, in their time zone (UTC unset)."""
    window = prefs.get("quiet")
    if not window:
        return False
    zone = zoneinfo.ZoneInfo(prefs.get("timezone") or "UTC")
    local = datetime.datetime.fromtimestamp(now_ms / 1000, zone)
    minute = local.hour * 60 + local.minute
    start, end = window
    return start <= minute < end if start < end else minute >= start or minute < end


def quiet_end_ms(prefs: dict[str, Any], now_ms: int) -> int | None:
    """When the quiet hours ``now_ms`` falls in end (None: not in quiet hours)."""
    if not quiet_now(prefs, now_ms):
        return None
    zone = zoneinfo.ZoneInfo(prefs.get("timezone") or "UTC")
    return next_local_ms(prefs["quiet"][1], zone, now_ms)


def next_local_ms(minute_of_day: int, zone: zoneinfo.ZoneInfo, now_ms: int) -> int:
    """The next time after ``now_ms`` the clock in ``zone`` reads ``minute_of_day`` (a time
    a DST change skips comes an hour later; one it repeats, the first time)."""
    local = datetime.datetime.fromtimestamp(now_ms / 1000, zone)
    day = local.date()
    for offset in range(3):
        naive = datetime.datetime.combine(day + datetime.timedelta(days=offset),
                                          datetime.time(minute_of_day // 60, minute_of_day % 60))
        at = naive.replace(tzinfo=zone)
        at_ms = int(at.astimezone(datetime.UTC).timestamp() * 1000)
        if at_ms > now_ms:
            return at_ms
    raise AssertionError("a local time recurs within three days")


def digest_of(changes: Any) -> dict[str, Any] | None:
    """A digest as a client sets it: ``{window_s}`` (merged per window) or ``{at: 'HH:MM'}``
    (once a day, local time), with ``normal: true`` to merge NORMAL ones too; null: none."""
    if changes is None:
        return None
    if not isinstance(changes, dict) or set(changes) - {"window_s", "at", "normal"} or (
            ("window_s" in changes) == ("at" in changes)):
        raise BadRequest("'digest' must be {window_s: 60..86400} or {at: 'HH:MM'}, with "
                         "'normal': true to include NORMAL notifications")
    out: dict[str, Any] = {"normal": changes.get("normal", False) is True}
    if "window_s" in changes:
        window = changes["window_s"]
        if isinstance(window, bool) or not isinstance(window, int) or not 60 <= window <= 86_400:
            raise BadRequest("'digest.window_s' must be an integer from 60 to 86400")
        out["window_s"] = window
    else:
        clock = _CLOCK.match(changes["at"]) if isinstance(changes["at"], str) else None
        if clock is None:
            raise BadRequest("'digest.at' must be a time 'HH:MM'")
        out["at"] = int(clock[1]) * 60 + int(clock[2])
    return out


def digested(prefs: dict[str, Any], category: str, priority: int) -> dict[str, Any] | None:
    """The digest a notification waits in, if any: LOW ones of a category with a digest, and
    NORMAL ones where the user asked for them too."""
    digest = prefs.get("digest", {}).get(category)
    if digest is None or priority > 1 or (priority == 1 and not digest["normal"]):
        return None
    return digest


def muted(prefs: dict[str, Any], category: str, channel: str, priority: int) -> bool:
    """Whether the user muted ``category`` on ``channel`` (never for CRITICAL)."""
    return priority < CRITICAL and channel in prefs.get("mute", {}).get(category, ())


def view(prefs: dict[str, Any]) -> dict[str, Any]:
    """The preferences as a client reads them back."""
    quiet = prefs.get("quiet")
    return {"locale": prefs.get("locale"), "timezone": prefs.get("timezone"),
            "quiet_hours": ({"start": f"{quiet[0] // 60:02d}:{quiet[0] % 60:02d}",
                             "end": f"{quiet[1] // 60:02d}:{quiet[1] % 60:02d}"}
                            if quiet else None),
            "mute": prefs.get("mute", {}),
            "digest": {category: _digest_view(d)
                       for category, d in prefs.get("digest", {}).items()}}


def _digest_view(digest: dict[str, Any]) -> dict[str, Any]:
    if "at" in digest:
        return {"at": f"{digest['at'] // 60:02d}:{digest['at'] % 60:02d}",
                "normal": digest["normal"]}
    return {"window_s": digest["window_s"], "normal": digest["normal"]}
