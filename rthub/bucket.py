"""One token bucket for every rate limit in the hub: an entity's (chat sends per user), a
gateway's, anyone's.

The bucket's level is plain data, ``(tokens, at_ms)``, so an entity keeps it in its state
and changes it through an event, and a gateway keeps it in a dict: the arithmetic is here
once. ``take`` refills by elapsed time, then spends, or raises ``RateLimited`` with the wait
until a token is there (the client's ``retry_after_ms``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rthub.errors import RateLimited

Level = Sequence[float]  # (tokens, at_ms): what a bucket had, and when


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``rate`` tokens a second, ``burst`` at most at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got "
                             f"{self.rate}/s and {self.burst}")

    def take(self, level: Level | None, now_ms: int, what: str, cost: float = 1.0
             ) -> tuple[float, int]:
        """Spend ``cost`` tokens: the new level ``(tokens, now_ms)``, or ``RateLimited``
        saying ``what`` is too fast and when to retry (a full bucket when ``level`` is None)."""
        tokens, at_ms = (self.burst, now_ms) if level is None else level
        tokens = min(self.burst, tokens + max(now_ms - at_ms, 0) * self.rate / 1000)
        if tokens < cost:
            wait = math.ceil((cost - tokens) * 1000 / self.rate)
            raise RateLimited(f"{what}; retry in {wait} ms", wait)
        return tokens - cost, now_ms
