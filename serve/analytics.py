"""What one gateway replica counts for the admin analytics between two flushes to Redis.

Only facts the gateway already holds are counted, with plain dict arithmetic (no I/O, no
lock): a client message its entity accepted, an error answered, a socket's end, a party's
recommendations reaching the replica. ``serve.analytics_store`` folds a ``Batch`` into
per-minute buckets in Redis every few seconds (``Control._heartbeats``), and reads them back
for ``GET /v1/admin/analytics``.

Recommendation click-through: the replica remembers, per topic, the tracks recommended to a
party (its ``party.recommendations`` events) or a playlist (``playlist.suggest`` answers) for
an hour, and an ``add`` / ``insert`` of one of them by a socket following that topic counts
as a recommended track added. A member adds through the replica that showed it the list
(their socket follows the party), so no replica needs another's memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.kinds.tracks import track_id
from serve.metrics import AnalyticsMetrics

if TYPE_CHECKING:
    from serve.connection import Connection

# frame type -> (entity kind, content field naming it): the client messages that count as
# messages to a room, party or playlist (the rest are reads, presence or housekeeping)
MESSAGES = {"chat.send": ("room", "room"), "party.control": ("party", "party"),
            "party.queue": ("party", "party"), "playlist.op": ("playlist", "playlist")}
FIELDS = {kind: f"messages:{kind}" for kind, _ in MESSAGES.values()}
SUGGEST = "playlist.suggest"
WATCHED = frozenset((*MESSAGES, SUGGEST))
SHOWN_EVENT = "party.recommendations"
REMEMBER_S = 3600.0  # a recommendation counts as the source of an add for this long
REMEMBER_TOPICS = 4096  # topics whose recommendations one replica remembers (oldest go)


@dataclass
class Batch:
    """Counts since the last flush, taken whole by ``Analytics.take``."""

    # tenant -> field -> increment (messages:<kind>, errors:<code>, sessions, ...)
    fields: dict[str, dict[str, int]] = field(default_factory=dict)
    # (tenant, kind) -> entity id -> messages
    top: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    # (tenant, member naming the list once hub-wide, kind, tracks in it)
    shown: list[tuple[str, str, str, int]] = field(default_factory=list)
    latency: list[int] = field(default_factory=list)  # delivery latency bucket increments

    def add(self, tenant: str, name: str, count: int = 1) -> None:
        counts = self.fields.get(tenant)
        if counts is None:
            counts = self.fields[tenant] = {}
        counts[name] = counts.get(name, 0) + count


@dataclass
class Snapshot:
    """What the replica's sockets are now, read at flush time (never on the hot path)."""

    connections: dict[str, int] = field(default_factory=dict)  # tenant -> open sockets
    users: dict[str, set[str]] = field(default_factory=dict)  # tenant -> users connected
    party_users: dict[tuple[str, str], set[str]] = field(default_factory=dict)


class Analytics:
    """One replica's counters for the admin analytics (see the module docstring)."""

    def __init__(self, metrics: AnalyticsMetrics, latency_counts: list[int]) -> None:
        self.metrics = metrics
        self.batch = Batch()
        self._latency = latency_counts  # the delivery latency histogram's own counts
        self._latency_taken = list(latency_counts)
        # topic -> (when, track ids recommended to it), oldest first
        self._recommended: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._unattributed: list[tuple[str, int, int]] = []  # (topic, seq, tracks) shown

    # -- facts, as they happen ----------------------------------------------------------------
    def handled(self, conn: Connection, frame: dict[str, Any], reply: dict[str, Any] | None
                ) -> None:
        """A client frame of a ``WATCHED`` type its handler accepted (the connection checks
        the type first: other frames cost a set lookup, nothing more)."""
        tenant = conn.identity.tenant
        kind = frame["type"]
        content = frame["content"]
        if kind == SUGGEST:
            self._suggested(tenant, content, reply or {})
            return
        entity_kind, id_field = MESSAGES[kind]
        entity = content.get(id_field)
        if not isinstance(entity, str):
            return
        self.batch.add(tenant, FIELDS[entity_kind])
        top = self.batch.top.setdefault((tenant, entity_kind), {})
        top[entity] = top.get(entity, 0) + 1
        self.metrics.messages.add(entity_kind)
        if kind == "party.control" and content.get("action") == "skip":
            self.batch.add(tenant, "skips")
            self.metrics.skips.count += 1
        elif kind == "party.queue" and content.get("op") == "add":
            self._added(conn, "party", entity, content.get("track"))
        elif kind == "playlist.op":
            op = content.get("op")
            if isinstance(op, dict) and isinstance(op.get("insert"), dict):
                self._added(conn, "playlist", entity, op["insert"].get("track"))

    def error(self, tenant: str, code: str) -> None:
        """A client frame answered with an error."""
        self.batch.add(tenant, f"errors:{code}")

    def ended(self, tenant: str, seconds: float) -> None:
        """A socket that opened has closed after ``seconds``."""
        self.metrics.session_duration.observe(seconds)
        self.batch.add(tenant, "sessions")
        self.batch.add(tenant, "session_ms", int(seconds * 1000))

    def arrived(self, event: dict[str, Any]) -> None:
        """A stream event reached this replica (once per event): a party's recommendations
        are remembered, and counted once its tenant is known (at the next flush)."""
        if event.get("type") != SHOWN_EVENT:
            return
        tracks = event["content"].get("tracks") or []
        self._remember(event["topic"], tracks)
        self._unattributed.append((event["topic"], int(event.get("seq") or 0), len(tracks)))

    # -- at flush time --------------------------------------------------------------------------
    def take(self, connections: Iterable[Connection]) -> tuple[Batch, Snapshot]:
        """The counts since the last call and what the sockets are now; starts a new batch."""
        snapshot = Snapshot()
        pending = {topic for topic, _, _ in self._unattributed}
        tenants: dict[str, set[str]] = {}
        for conn in connections:
            tenant, user = conn.identity.tenant, conn.identity.user
            snapshot.connections[tenant] = snapshot.connections.get(tenant, 0) + 1
            snapshot.users.setdefault(tenant, set()).add(user)
            for topic in conn.positions:
                if topic.startswith("party:"):
                    snapshot.party_users.setdefault((tenant, topic[6:]), set()).add(user)
                if topic in pending:
                    tenants.setdefault(topic, set()).add(tenant)
        batch, self.batch = self.batch, Batch()
        for topic, seq, size in self._unattributed:  # no follower left: nobody saw it
            for tenant in tenants.get(topic, ()):
                batch.shown.append((tenant, f"{topic}:{seq}", "party", size))
        self._unattributed = []
        now = list(self._latency)
        batch.latency = [a - b for a, b in zip(now, self._latency_taken, strict=True)]
        self._latency_taken = now
        return batch, snapshot

    def counted_shown(self, kind: str, tracks: int) -> None:
        """A list of recommendations this replica recorded first, hub-wide."""
        self.metrics.recommendations_shown.add(kind)
        counts = self.metrics.recommended_tracks_shown.counts
        counts[kind] = counts.get(kind, 0) + tracks

    def put_back(self, batch: Batch) -> None:
        """A flush failed: its counts go into the next one (the snapshot is taken anew)."""
        for tenant, counts in batch.fields.items():
            for name, count in counts.items():
                self.batch.add(tenant, name, count)
        for key, entities in batch.top.items():
            top = self.batch.top.setdefault(key, {})
            for entity, count in entities.items():
                top[entity] = top.get(entity, 0) + count
        self.batch.shown.extend(batch.shown)
        self._latency_taken = [a - b for a, b in zip(self._latency_taken, batch.latency,
                                                     strict=True)]

    # -- recommendations ------------------------------------------------------------------------
    def _suggested(self, tenant: str, content: dict[str, Any], reply: dict[str, Any]) -> None:
        tracks = [item.get("track") for item in reply.get("tracks", [])
                  if isinstance(item, dict)]
        playlist = content.get("playlist")
        if not tracks or not isinstance(playlist, str):
            return
        self._remember(f"playlist:{playlist}", tracks)
        self.batch.shown.append((tenant, f"playlist:{playlist}:{time.time_ns()}", "playlist",
                                 len(tracks)))

    def _remember(self, topic: str, tracks: list[Any]) -> None:
        recommended = self._recommended
        recommended.pop(topic, None)
        recommended[topic] = (time.monotonic(), frozenset(track_id(t) for t in tracks))
        while len(recommended) > REMEMBER_TOPICS:
            recommended.popitem(last=False)

    def _added(self, conn: Connection, kind: str, entity: str, track: Any) -> None:
        topic = f"{kind}:{entity}"
        found = self._recommended.get(topic)
        if (found is None or track is None or topic not in conn.positions
                or time.monotonic() - found[0] > REMEMBER_S or track_id(track) not in found[1]):
            return
        self.batch.add(conn.identity.tenant, f"rec_added:{kind}")
        self.metrics.recommended_tracks_added.add(kind)
