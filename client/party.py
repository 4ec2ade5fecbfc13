"""A listening party over a ``Hub``: its state as a statement about time, read through the
client's clock, and the scheduling a player needs (when to start, how to correct drift).

``party.state {position_ms, at_server_ms, playing, ...}`` says: at server time
``at_server_ms`` the track is at ``position_ms``. ``hub.clock`` turns server time into local
time, so every device computes the same position at the same true instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from client.clock import now_ms
from client.emitter import Emitter
from client.hub import Hub
from client.messages import ACKS, PartyQuality, PartyReport, parse

RATE_WINDOW_MS = 2000.0  # a nudge corrects the drift over this long (the party's own rule)
MAX_RATE_CHANGE = 0.05  # at most ±5%: inaudible


class PartyClient:
    """One device in one party: ``state`` (the last ``party.state``), ``queue`` (its
    items); ``on('state' | 'queue' | 'recommendations', fn)``."""

    def __init__(self, hub: Hub, party_id: str) -> None:
        self.hub = hub
        self.party_id = party_id
        self.topic = f"party:{party_id}"
        self.state: dict[str, Any] | None = None
        self.queue: list[dict[str, Any]] = []
        self._events = Emitter()
        self._offs: list[Callable[[], None]] = []

    def on(self, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
        return self._events.on(name, fn)

    async def join(self) -> dict[str, Any]:
        """Join (which follows the party's topic); returns the join's ack."""
        if not self._offs:
            self._offs = [self.hub.on(kind, self._event) for kind in
                          ("party.state", "party.queue", "party.recommendations")]
        ack = await self.hub.request("party.join", {"party": self.party_id})
        self._state(ack["state"])
        if isinstance(ack.get("queue"), list):
            self._queue(ack["queue"])
        return ack

    async def leave(self) -> None:
        for off in self._offs:
            off()
        self._offs = []
        await self.hub.request("party.leave", {"party": self.party_id})

    async def control(self, action: str, position_ms: int | None = None,
                      volume: int | None = None) -> dict[str, Any]:
        """``play``, ``pause``, ``skip``, ``seek`` (``position_ms``), ``volume_change``."""
        content: dict[str, Any] = {"party": self.party_id, "action": action}
        if position_ms is not None:
            content["position_ms"] = position_ms
        if volume is not None:
            content["volume"] = volume
        return await self.hub.request("party.control", content)

    async def queue_op(self, op: str, track: Any = None, item_id: str | None = None,
                       to_index: int | None = None) -> dict[str, Any]:
        """``add`` (``track``, optional ``item_id``), ``remove``, ``move``, ``vote``. (The JS
        SDK's ``queue(op, ...)``: in Python ``queue`` is the items.)"""
        content: dict[str, Any] = {"party": self.party_id, "op": op}
        for name, value in (("track", track), ("item_id", item_id), ("to_index", to_index)):
            if value is not None:
                content[name] = value
        return await self.hub.request("party.queue", content)

    async def report(self, position_ms: float, at_local_ms: float | None = None,
                     track: Any = ...) -> PartyReport:
        """Tell the party where this device's player is (``position_ms`` at local time
        ``at_local_ms``, sent as server time through the clock estimate); the ack is the
        party's own verdict: ``drift_ms`` and, past its tolerance, a ``correction``."""
        at = self.hub.clock.to_server(now_ms() if at_local_ms is None else at_local_ms)
        content: dict[str, Any] = {"party": self.party_id, "position_ms": position_ms,
                                   "at_server_ms": at}
        playing = (self.state or {}).get("track") if track is ... else track
        if playing is not None:
            content["track"] = playing
        return parse("party.report", await self.hub.request("party.report", content), ACKS)

    async def quality(self, bandwidth_kbps: float) -> PartyQuality:
        """The bitrate tier this device should stream at for its measured bandwidth."""
        ack = await self.hub.request("party.quality", {"party": self.party_id,
                                                       "bandwidth_kbps": bandwidth_kbps})
        return parse("party.quality", ack, ACKS)

    def position_at(self, local_ms: float | None = None) -> float:
        """Milliseconds into the track at local time ``local_ms`` (now by default)."""
        state = self.state
        if state is None:
            return 0.0
        if not state.get("playing"):
            return float(state["position_ms"])
        at_server = self.hub.clock.to_server(now_ms() if local_ms is None else local_ms)
        return max(0.0, state["position_ms"] + at_server - state["at_server_ms"])

    def _event(self, content: dict[str, Any], frame: dict[str, Any]) -> None:
        if frame.get("topic") != self.topic:
            return
        kind = frame.get("type")
        if kind == "party.state":
            self._state(content)
        elif kind == "party.queue":
            self._queue(content.get("queue", []))
        else:
            self._events.emit("recommendations", content)

    def _state(self, state: dict[str, Any]) -> None:
        self.state = state
        self._events.emit("state", state)

    def _queue(self, queue: list[dict[str, Any]]) -> None:
        self.queue = queue
        self._events.emit("queue", queue)


class PartyScheduler:
    """When a player starts and how it corrects drift: a rate nudge under
    ``nudge_below_ms`` (400 ms, PROTOCOL.md), a seek above; nothing within
    ``tolerance_ms``."""

    def __init__(self, party: PartyClient, nudge_below_ms: float = 400.0,
                 tolerance_ms: float = 20.0) -> None:
        self.party = party
        self.nudge_below_ms = nudge_below_ms
        self.tolerance_ms = tolerance_ms

    def plan(self, local_now_ms: float | None = None) -> dict[str, float]:
        """``{start_at_local_ms, offset_ms}``: start the track at that local time from that
        offset. A state whose moment is still ahead (the party's lead) starts then; one
        already past starts now, where the track is by now."""
        state = self.party.state or {}
        now = now_ms() if local_now_ms is None else local_now_ms
        start = self.party.hub.clock.to_local(state.get("at_server_ms", 0))
        if start >= now or not state.get("playing"):
            return {"start_at_local_ms": max(start, now),
                    "offset_ms": float(state.get("position_ms", 0))}
        return {"start_at_local_ms": now, "offset_ms": self.party.position_at(now)}

    def correct(self, actual_position_ms: float, local_now_ms: float | None = None
                ) -> dict[str, Any]:
        """``{drift_ms, action: none|nudge|seek, rate, seek_to_ms}`` for a player at
        ``actual_position_ms`` at ``local_now_ms``. A nudge plays at ``rate`` for 2 s
        (the drift corrected over that time, at most ±5%)."""
        now = now_ms() if local_now_ms is None else local_now_ms
        expected = self.party.position_at(now)
        drift = actual_position_ms - expected
        if abs(drift) <= self.tolerance_ms or not (self.party.state or {}).get("playing"):
            return {"drift_ms": drift, "action": "none", "rate": 1.0, "seek_to_ms": None}
        if abs(drift) < self.nudge_below_ms:
            change = max(-MAX_RATE_CHANGE, min(MAX_RATE_CHANGE, -drift / RATE_WINDOW_MS))
            return {"drift_ms": drift, "action": "nudge", "rate": 1.0 + change,
                    "seek_to_ms": None}
        return {"drift_ms": drift, "action": "seek", "rate": 1.0, "seek_to_ms": expected}
