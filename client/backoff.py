"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(attempt: int, initial_s: float = 0.2, max_s: float = 10.0,
                  rand: Callable[[], float] = random.random) -> float:
    """Attempt ``n`` waits a uniform time in ``[0, min(max_s, initial_s * 2**n)]`` (AWS's
    "full jitter"), so clients a restart dropped together do not come back together."""
    return rand() * min(max_s, initial_s * 2 ** max(0, attempt))
