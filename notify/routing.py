"""Which of a notification's channels to send to now: the user's preferences, their quiet
hours, what they can be reached on, and the fallback chain (push -> email -> sms).

In-app and Pusher are the live channels: every notification goes to both. Push, email and
SMS alert the user away from the app, so one of them is enough: the first the user allows
and can be reached on, then the next only if that one fails for good. A CRITICAL
notification ignores mutes and quiet hours and goes to every channel the user has at once.
Pure functions: the courier (``notify.courier``) does the sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import actors.kinds.inbox_prefs as prefs_of

EXTERNAL = ("pusher", "push", "email", "sms")
CHAIN = ("push", "email", "sms")
SUCCESS = frozenset({"sent", "delivered", "seen", "read"})


@dataclass(frozen=True, slots=True)
class Plan:
    send: list[str] = field(default_factory=list)
    skip: dict[str, str] = field(default_factory=dict)  # channel -> why
    wait_until_ms: int | None = None  # quiet hours: nothing goes out before


def plan(priority: int, category: str, states: dict[str, str], prefs: dict[str, Any],
         unreachable: dict[str, str], now_ms: int) -> Plan:
    """``states``: each channel's delivery state; ``unreachable``: channel -> why it cannot
    reach this user (no provider configured, nothing registered)."""
    critical = priority >= prefs_of.CRITICAL
    open_ = [c for c in EXTERNAL if states.get(c) == "queued"]
    skip: dict[str, str] = {}
    for channel in open_:
        if prefs_of.muted(prefs, category, channel, priority):
            skip[channel] = "muted by the user"
        elif channel in unreachable:
            skip[channel] = unreachable[channel]
    open_ = [c for c in open_ if c not in skip]
    if not open_:
        return Plan([], skip)
    if critical:
        return Plan(open_, skip)
    quiet_end = prefs_of.quiet_end_ms(prefs, now_ms)
    if quiet_end is not None:
        return Plan([], skip, quiet_end)
    send = ["pusher"] if "pusher" in open_ else []
    done = next((c for c in CHAIN if states.get(c) in SUCCESS), None)
    if done is not None:
        skip.update({c: f"sent by {done}" for c in CHAIN if c in open_})
    else:
        send.extend(next(([c] for c in CHAIN if c in open_), []))
    return Plan(send, skip)
