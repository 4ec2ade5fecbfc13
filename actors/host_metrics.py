"""An actor host's figures as Prometheus metrics, through Ray's metrics agent.

A host is a Ray actor with no port of its own: Ray's per-node metrics agent exports what
``ray.util.metrics`` records (names prefixed ``ray_``, counters suffixed ``_total``), and
Prometheus finds every node's agent through the service-discovery file Ray writes
(``/tmp/ray/prom_metrics_service_discovery.json``) or KubeRay's PodMonitor. Nothing is
recorded per message: the host's plain counters (``Host.stats``) are copied every
``EXPORT_S``, counters as the increase since the last copy, so the hot path pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXPORT_S = 5.0

# stats field -> (metric, help); gauges are levels, counters only grow
GAUGES = {
    "residents": ("rthub_host_residents", "Entities active in memory on the host"),
    "mailbox_depth": ("rthub_host_mailbox_depth",
                      "Messages queued in the host's entity mailboxes"),
    "journal_backlog": ("rthub_host_journal_backlog",
                        "Events waiting for PostgreSQL's group commit"),
    "checkpoint_lag_s": ("rthub_host_checkpoint_lag_seconds",
                         "Age of the oldest change not yet checkpointed"),
    "rss_bytes": ("rthub_host_rss_bytes", "Resident memory of the host process"),
    "publish_backlog": ("rthub_host_publish_backlog",
                        "Stream events committed and waiting to be published to Redis"),
}
COUNTERS = {
    "calls": ("rthub_host_calls", "Ray calls received (each carries a batch of messages)"),
    "messages": ("rthub_host_messages", "Entity messages handled"),
    "activations": ("rthub_host_activations", "Entities activated (loaded or created)"),
    "passivations": ("rthub_host_passivations", "Entities unloaded (idle or shutdown)"),
    "checkpoints": ("rthub_host_checkpoints", "Entity snapshots written"),
    "checkpoint_failures": ("rthub_host_checkpoint_failures",
                            "Checkpoint writes that failed (retried)"),
    "persist_failures": ("rthub_host_persist_failures",
                         "Turns whose events could not be made durable (answered error)"),
    "shed_mailbox": ("rthub_host_shed_mailbox",
                     "Client messages refused at the host: entity mailbox full"),
    "shed_journal": ("rthub_host_shed_journal",
                     "Client messages refused at the host: journal backlog full"),
    "log_commits": ("rthub_host_log_commits", "Group commits of the entity log"),
    "published": ("rthub_host_events_published", "Stream events published to Redis"),
    "publish_failures": ("rthub_host_publish_failures",
                         "Publish batches that failed (retried in order)"),
    "republished": ("rthub_host_events_republished",
                    "Stream events found unpublished in an outbox at activation and published"),
}
RECOMMENDATIONS = ("rthub_host_recommendations",
                   "Party autofill recommendations by outcome: model, or the fallback's reason")


def exported_names() -> set[str]:
    """Every name Prometheus sees for a host (what dashboards and alerts may use)."""
    return ({f"ray_{name}" for name, _ in GAUGES.values()}
            | {f"ray_{name}_total" for name, _ in (*COUNTERS.values(), RECOMMENDATIONS)})


class HostMetrics:
    """The metrics of one host actor (create inside the actor's process)."""

    def __init__(self, host: str, namespace: str) -> None:
        from ray.util.metrics import Counter, Gauge  # a Ray worker's, not a test's

        self.tags = {"host": host, "namespace": namespace}  # two hubs may share a cluster
        tags = tuple(self.tags)
        self._gauges = {field: Gauge(name, doc, tag_keys=tags)
                        for field, (name, doc) in GAUGES.items()}
        self._counters = {field: Counter(name, doc, tag_keys=tags)
                          for field, (name, doc) in COUNTERS.items()}
        self._recommendations = Counter(RECOMMENDATIONS[0], RECOMMENDATIONS[1],
                                        tag_keys=(*tags, "outcome"))
        self._last: dict[str, float] = {}

    def export(self, stats: Mapping[str, Any], outcomes: Mapping[str, int]) -> None:
        """Copy a ``Host.stats`` reading (and recommendation outcomes) into the metrics."""
        for field, gauge in self._gauges.items():
            gauge.set(float(stats.get(field, 0)), tags=self.tags)
        for field, counter in self._counters.items():
            self._add(field, counter, float(stats.get(field, 0)), self.tags)
        for outcome, count in outcomes.items():
            self._add(f"rec:{outcome}", self._recommendations, float(count),
                      {**self.tags, "outcome": outcome})

    def _add(self, key: str, counter: Any, value: float, tags: dict[str, str]) -> None:
        increase = value - self._last.get(key, 0.0)
        if increase > 0:
            counter.inc(increase, tags=tags)
        self._last[key] = value
