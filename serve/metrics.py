"""Prometheus metrics of one gateway replica (served at ``/metrics``)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from serve.event_lag import EventLag
from serve.gauges import AutoscalingFigures, HostQueues, SocketFigures


class Tally:
    """A counter cheap enough for the per-socket fan-out loop: a plain int, read on scrape."""

    def __init__(self, name: str, doc: str, registry: CollectorRegistry) -> None:
        self.name, self.doc, self.count = name, doc, 0
        self.read: Callable[[], int] | None = None  # or a count kept elsewhere
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        value = self.count if self.read is None else self.read()
        yield CounterMetricFamily(self.name, self.doc, value=value)


class TallyBy:
    """A labelled counter for per-frame paths: a dict of ints (one label), read on scrape."""

    def __init__(self, name: str, doc: str, label: str, registry: CollectorRegistry) -> None:
        self.name, self.doc, self.label = name, doc, label
        self.counts: dict[str, int] = {}
        registry.register(self)

    def add(self, value: str) -> None:
        counts = self.counts
        counts[value] = counts.get(value, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.doc, labels=[self.label])
        for value, count in sorted(self.counts.items()):
            family.add_metric([value], count)
        yield family


class Buckets:
    """A histogram kept as a list of ints (one bisect an observation, no lock), read on
    scrape; the admin analytics read the same counts (``counts``), so one observation
    serves both."""

    def __init__(self, name: str, doc: str, bounds: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.doc, self.bounds = name, doc, bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((_bound(bound), running))
        yield HistogramMetricFamily(self.name, self.doc, buckets=cumulative,
                                    sum_value=self.sum)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


LATENCY_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
SESSION_BOUNDS = (1, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)


class GatewayMetrics:
    """A registry of its own, so several gateways in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.event_lag = EventLag(self.registry)  # the family streams' consumers, on scrape
        self.connections = Gauge("rthub_connections", "Open WebSocket connections",
                                 registry=self.registry)
        self.refused = Counter("rthub_connections_refused_total",
                               "Upgrades refused before a socket opened", ["code"],
                               registry=self.registry)
        self.frames_in = TallyBy("rthub_frames_in", "Client frames by type", "type",
                                 self.registry)
        self.frames_out = TallyBy("rthub_frames_out", "Server frames of a socket's own "
                                  "(acks, errors, pings) by type", "type", self.registry)
        self.errors = TallyBy("rthub_errors", "Error replies by code", "code", self.registry)
        self.deliveries = Tally("rthub_deliveries", "Stream events written to sockets",
                                self.registry)
        self.socket_writes = Tally("rthub_socket_writes",
                                   "Socket writes (one per socket per loop turn): "
                                   "deliveries / writes is the batching achieved",
                                   self.registry)
        self.in_flight = Gauge("rthub_requests_in_flight",
                               "Client requests received and not yet answered",
                               registry=self.registry)
        self.paused = Gauge("rthub_sockets_paused",
                            "Sockets not read because RTHUB_MAX_IN_FLIGHT requests are pending",
                            registry=self.registry)
        self.shed = TallyBy("rthub_requests_shed",
                            "Client requests refused by admission control (unavailable with "
                            "retry_after_ms), by the bound that refused them", "reason",
                            self.registry)
        self.queue_depth = Gauge("rthub_host_queue_depth",
                                 "Entity messages this replica has waiting on actor hosts",
                                 registry=self.registry)
        self.queue_delay = Gauge("rthub_host_queue_delay_seconds",
                                 "Age of the oldest message this replica has waiting on an "
                                 "actor host (admission control compares it with "
                                 "RTHUB_QUEUE_TARGET_MS)", registry=self.registry)
        self.slow_closed = Tally("rthub_slow_clients_closed",
                                 "Sockets closed with 4413 for not reading", self.registry)
        self.gaps = Tally("rthub_stream_gaps",
                          "Live events that skipped seqs (Redis lost them from pub/sub): read "
                          "back from the stream, or the client told recovered false",
                          self.registry)
        self.delivery_latency = Buckets(
            "rthub_delivery_latency_seconds",
            "Stream event age when it reaches this replica's fan-out (once per event)",
            LATENCY_BOUNDS, self.registry)
        self.party_drift = Histogram(
            "rthub_party_drift_seconds",
            "How far a listening party device's reported position was from the party's",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1, 5),
            registry=self.registry)
        self.tier_changes = Counter("rthub_party_tier_changes_total",
                                    "Bitrate tier changes given to party devices",
                                    registry=self.registry)
        self.recommendations = TallyBy(
            "rthub_recommendations", "Recommendation answers by what gave them: model, or the "
            "popularity fallback's reason (deadline, unavailable, error)", "outcome",
            self.registry)
        self.notifications_queued = Gauge(
            "rthub_notifications_queued", "Notifications accepted and not yet sent (the "
            "durable queue; read from PostgreSQL each heartbeat)", registry=self.registry)
        self.notification_deliveries = Gauge(
            "rthub_notification_deliveries",
            "Notification x channel deliveries changed in the last hour, by channel and "
            "state (queued, sent, delivered, seen, read, failed, skipped; from PostgreSQL "
            "each heartbeat: every replica reports the same hub-wide figure)",
            ["channel", "state"], registry=self.registry)
        self.rate_limited = TallyBy(
            "rthub_rate_limited", "Frames, sockets and HTTP requests refused by a rate limit, "
            "by rule (scope:what)", "rule", self.registry)
        self.rate_limit_errors = Tally(
            "rthub_rate_limit_errors", "Rate limit checks Redis could not answer (the "
            "requests were let through)", self.registry)
        self.revoked_closed = Tally("rthub_revoked_sockets_closed",
                                    "Sockets closed with 4410 because their token was revoked",
                                    self.registry)
        self.expired_closed = Tally("rthub_expired_sockets_closed",
                                    "Sockets closed with 4401 because their token's exp passed "
                                    "without a session.refresh", self.registry)
        self.audit_dropped = Tally(
            "rthub_audit_dropped", "Security audit entries dropped past the per-replica cap "
            "(a flood of bad tokens)", self.registry)
        self.events_dropped = TallyBy(
            "rthub_events_dropped", "Exported events dropped by this replica (its queue of "
            "system events was full while Redis was away), by family", "family",
            self.registry)
        self.analytics = AnalyticsMetrics(self.registry)
        self.sockets = SocketFigures(self.registry)
        self.host_queues = HostQueues(self.registry)
        self.autoscaling = AutoscalingFigures(self.registry)
        # what an entity's answer to a message passed straight to it adds to the figures
        self.replies: dict[str, Callable[[dict[str, Any]], None]] = {
            "party.quality": self._tier_reply, "party.report": self._drift_reply}

    def _tier_reply(self, reply: dict[str, Any]) -> None:
        if reply.get("changed"):
            self.tier_changes.inc()

    def _drift_reply(self, reply: dict[str, Any]) -> None:
        if reply.get("drift_ms") is not None:
            self.party_drift.observe(abs(reply["drift_ms"]) / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class AnalyticsMetrics:
    """The live analytics' counters (issue 19): labels bounded by kind, never by entity
    (per room, party or track figures are the admin page's top-N, from Redis)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.session_duration = Buckets(
            "rthub_session_duration_seconds", "How long sockets stayed open (upgrade to close)",
            SESSION_BOUNDS, registry)
        self.messages = TallyBy("rthub_messages", "Client messages to a room, party or "
                                "playlist that it accepted (chat.send, party.control, "
                                "party.queue, playlist.op), by kind", "kind", registry)
        self.skips = Tally("rthub_party_skips", "Tracks skipped in listening parties",
                           registry)
        self.recommendations_shown = TallyBy(
            "rthub_recommendations_shown", "Recommendation lists shown: a party's pushed to "
            "its members (counted once hub-wide, by the replica that records it first), a "
            "playlist's suggestions answered", "kind", registry)
        self.recommended_tracks_shown = TallyBy(
            "rthub_recommended_tracks_shown", "Tracks in the recommendation lists shown",
            "kind", registry)
        self.recommended_tracks_added = TallyBy(
            "rthub_recommended_tracks_added", "Tracks added to a party's queue or a playlist "
            "that were recommended to it in the last hour (click-through: this over "
            "rthub_recommended_tracks_shown_total)", "kind", registry)
        self.flush_errors = Tally("rthub_analytics_flush_errors",
                                  "Flushes of the per-minute analytics to Redis that failed "
                                  "(their counts are kept for the next)", registry)
