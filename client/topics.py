"""Where a client is in each topic's stream, sans I/O: the epoch and last ``seq`` seen, the
duplicates to drop, and what to ask for after a reconnect the server did not resume.

PROTOCOL.md: delivery is at least once (a resume may repeat events, dropped here by
``seq <= last seen``), in topic order, and never a gap without ``recovered: false``, which
tells the client to reload that topic's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Position:
    """A topic's stream epoch and the last ``seq`` the client has seen in it."""

    epoch: str
    seq: int


class Topics:
    """The positions of every topic the socket follows (subscribed, or followed by a
    ``room.join``, ``party.join``, ``playlist.open``... whose ack names its topic)."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}

    def followed(self, ack: Any) -> str | None:
        """An ack that names ``topic``, ``epoch`` and ``seq``: the socket follows the topic
        from there. A topic tracked already keeps its own seq (the ack may be written before
        events it counts, which must not be taken for repeats). Returns the topic (None
        when the ack names none)."""
        if not (isinstance(ack, dict) and isinstance(ack.get("topic"), str)
                and isinstance(ack.get("epoch"), str) and isinstance(ack.get("seq"), int)):
            return None
        known = self.positions.get(ack["topic"])
        if known is None or known.epoch != ack["epoch"]:
            self.positions[ack["topic"]] = Position(ack["epoch"], ack["seq"])
        return ack["topic"]

    def restored(self, content: dict[str, Any]) -> bool:
        """A ``subscribed {topic, epoch, seq, recovered}`` frame or a ``subscribe since`` ack.
        Recovered: the missed events follow (repeats dropped by seq). Not recovered: the
        stream restarts at ``seq`` and the caller reloads. Returns ``recovered``."""
        recovered = bool(content.get("recovered"))
        known = self.positions.get(content["topic"])
        if recovered:  # the replay follows: keep our seq (the ack's is the current one)
            if known is not None:
                known.epoch = content["epoch"]
            return True
        self.positions[content["topic"]] = Position(content["epoch"], content["seq"])
        return False

    def accept(self, frame: dict[str, Any]) -> bool:
        """Whether an event is new: False for a repeat of a topic event already seen (an
        ephemeral event, without ``seq``, is always new)."""
        seq, topic = frame.get("seq"), frame.get("topic")
        if not isinstance(seq, int) or not isinstance(topic, str):
            return True
        known = self.positions.get(topic)
        if known is None:
            return True
        if seq <= known.seq:
            return False
        known.seq = seq
        return True

    def since(self) -> dict[str, dict[str, Any]]:
        """``{topic: {epoch, seq}}``: what a fresh session subscribes to again."""
        return {topic: {"epoch": p.epoch, "seq": p.seq} for topic, p in self.positions.items()}

    def forget(self, topic: str) -> None:
        self.positions.pop(topic, None)
