"""Reconnect delays: exponential backoff with full jitter, and the token's expiry."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable


def backoff_delay(attempt: int, initial_s: float = 0.2, max_s: float = 10.0,
                  rand: Callable[[], float] = random.random) -> float:
    """Attempt ``n`` waits a uniform time in ``[0, min(max_s, initial_s * 2**n)]`` (AWS's
    "full jitter"), so clients a restart dropped together do not come back together."""
    return rand() * min(max_s, initial_s * 2 ** max(0, attempt))


def token_exp(token: str) -> float | None:
    """The ``exp`` (seconds) of a JWT, read from its payload and not verified: the client
    only needs to know when to ask its provider for a fresh one. None when unreadable."""
    try:
        part = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
