"""The server's clock as a client estimates it: NTP's on-wire algorithm, with the filter that
keeps the lowest-delay samples.

Each ``time.ping {t0}`` / ``time.pong {t0, t1, t2}`` exchange, received at local time ``t3``,
gives one sample (all in ms):

    delay  = (t3 - t0) - (t2 - t1)          # time on the wire, both ways
    offset = ((t1 - t0) + (t2 - t3)) / 2     # server clock minus local clock

The offset is exact when the two directions take equal time; its error is at most
``delay / 2`` whatever the asymmetry. So a sample that waited in a queue (jitter) is a worse
sample, and the estimate is the median offset of the ``keep`` lowest-delay samples among the
last ``window`` (NTP's clock filter does the same with 8 samples). Clients take a burst of
samples on joining and one every few seconds after, and schedule playback with
``to_local(at_server_ms)``.
"""

from __future__ import annotations

import statistics
import time
from collections import deque


class ClockEstimator:
    """Offset of the server's clock from ours, from ping/pong samples."""

    def __init__(self, window: int = 16, keep: int = 4) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=window)  # (delay, offset)
        self.keep = keep

    def add(self, t0: float, t1: float, t2: float, t3: float) -> tuple[float, float]:
        """One exchange; returns its (delay, offset)."""
        delay = (t3 - t0) - (t2 - t1)
        offset = ((t1 - t0) + (t2 - t3)) / 2
        self.samples.append((max(delay, 0.0), offset))
        return delay, offset

    @property
    def offset_ms(self) -> float:
        """Server time minus local time, in ms (0 before any sample)."""
        if not self.samples:
            return 0.0
        best = sorted(self.samples)[: self.keep]
        return statistics.median(offset for _, offset in best)

    @property
    def error_bound_ms(self) -> float:
        """Half the best sample's round trip: the offset is off by at most this."""
        return min(delay for delay, _ in self.samples) / 2 if self.samples else float("inf")

    def to_server(self, local_ms: float) -> float:
        return local_ms + self.offset_ms

    def to_local(self, server_ms: float) -> float:
        return server_ms - self.offset_ms


_WALL_AT_START_MS = time.time() * 1000
_MONOTONIC_AT_START = time.monotonic()


def now_ms() -> float:
    """Local time in ms: wall-clock based (comparable with server ms once the offset is
    applied) but monotonic, so a system clock step never sends a schedule backwards."""
    return _WALL_AT_START_MS + (time.monotonic() - _MONOTONIC_AT_START) * 1000
