"""What each party device reports (a mixin of ``ListeningParty``): where it is playing, which
gets a correction past the tolerance (a rate nudge under 400 ms of drift, a seek above), and
the bandwidth it measures, which sets its bitrate tier (down at once, up only with headroom
and hysteresis)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from actors.entity import Context, applies, handles
from actors.kinds.party_types import Quality, Report, TierSet
from rthub.errors import BadRequest

HEADROOM = 1.25  # a tier needs this much more bandwidth than its bitrate
HYSTERESIS = 0.2  # ... and this much more again to step up to it
RATE_WINDOW_MS = 2000  # a rate nudge corrects the drift over this long
MAX_NUDGE = 0.05


def pick_tier(ladder: tuple[int, ...], current: int | None, bandwidth_kbps: float) -> int:
    """The bitrate tier for a measured bandwidth: down at once when the current tier no
    longer fits with headroom, up only with headroom and hysteresis (no flapping near a
    boundary)."""
    fitting = [t for t in ladder if bandwidth_kbps >= t * HEADROOM] or [ladder[0]]
    best = fitting[-1]
    if current is None or best < current:
        return best
    climbing = [t for t in ladder
                if t > current and bandwidth_kbps >= t * HEADROOM * (1 + HYSTERESIS)]
    return climbing[-1] if climbing else current


class Devices:
    """``party.report`` and ``party.quality``; tiers are transient (a device measures
    again)."""

    __slots__ = ()
    state_needs: ClassVar[tuple[str, ...]] = ("tiers", "track", "playing")
    kind_provides: ClassVar[tuple[str, ...]] = ("_member", "view", "position_at")
    state: Any

    @handles(Report)
    def report(self, msg: Report, ctx: Context) -> None:
        """A device says where it is; past the tolerance it gets a correction: a rate nudge
        under 400 ms of drift (inaudible), a seek above."""
        self._member(msg.user)
        s = self.state
        if msg.track is not None and msg.track != s.track:
            ctx.reply({"drift_ms": None, "correction": {"mode": "reload", "state": self.view()}})
            return
        drift = msg.position_ms - self.position_at(msg.at_server_ms)
        reply: dict[str, Any] = {"drift_ms": round(drift, 1)}
        if s.playing and abs(drift) > ctx.settings.party_drift_tolerance_ms:
            if abs(drift) < 400:
                rate = max(1 - MAX_NUDGE, min(1 + MAX_NUDGE, 1 - drift / RATE_WINDOW_MS))
                reply["correction"] = {"mode": "rate", "rate": round(rate, 4),
                                       "for_ms": RATE_WINDOW_MS}
            else:
                at = ctx.now_ms + ctx.settings.party_lead_ms
                reply["correction"] = {"mode": "seek", "position_ms": int(self.position_at(at)),
                                       "at_server_ms": at}
        ctx.reply(reply)

    @handles(Quality)
    def quality(self, msg: Quality, ctx: Context) -> None:
        self._member(msg.user)
        if not (isinstance(msg.bandwidth_kbps, int | float) and math.isfinite(msg.bandwidth_kbps)
                and msg.bandwidth_kbps >= 0):
            raise BadRequest("bandwidth_kbps must be a number >= 0")
        current = self.state.tiers.get(msg.device)
        tier = pick_tier(ctx.settings.quality_ladder, current, msg.bandwidth_kbps)
        if tier != current:
            ctx.emit(TierSet(msg.device, tier))
        ctx.reply({"bitrate_kbps": tier, "changed": current is not None and tier != current})

    @applies(TierSet)
    def _tier_set(self, ev: TierSet) -> None:
        self.state.tiers[ev.device] = ev.tier
