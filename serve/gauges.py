"""Gateway figures read from the replica's own state when Prometheus scrapes, so nothing is
kept in step on the hot path: sockets per tenant, the autoscaling policy's input, and each
host's queue as admission control sees it. Each collector is registered with the replica's
metrics and given its source by the gateway (``None``: the families, with no samples)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from serve.autoscaling import SOCKETS_METRIC, target_sockets

if TYPE_CHECKING:
    from actors.client import ActorSystem
    from rthub.config import Settings
    from serve.auth import Identity


class SocketFigures:
    """Open sockets and distinct users per tenant, and users in listening parties."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # (identity, topics followed) of each open socket
        self.sockets: Callable[[], Iterable[tuple[Identity, Iterable[str]]]] = tuple
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections: dict[str, int] = {}
        users: dict[str, set[str]] = {}
        listeners: set[tuple[str, str]] = set()
        for identity, topics in self.sockets():
            tenant = identity.tenant
            connections[tenant] = connections.get(tenant, 0) + 1
            users.setdefault(tenant, set()).add(identity.user)
            if any(topic.startswith("party:") for topic in topics):
                listeners.add((tenant, identity.user))
        family = GaugeMetricFamily("rthub_tenant_connections",
                                   "Open WebSocket connections by tenant", labels=["tenant"])
        for tenant, count in sorted(connections.items()):
            family.add_metric([tenant], count)
        yield family
        family = GaugeMetricFamily("rthub_tenant_users",
                                   "Distinct users connected to this replica, by tenant",
                                   labels=["tenant"])
        for tenant, found in sorted(users.items()):
            family.add_metric([tenant], len(found))
        yield family
        yield GaugeMetricFamily("rthub_party_listeners", "Users of this replica following a "
                                "listening party (active in one)", value=len(listeners))


class HostQueues:
    """Each actor host's queue as this replica's admission control compares it with its
    bounds (``ActorSystem.queues``), with the bounds beside it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.system: ActorSystem | None = None
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("rthub_host_lane_depth", "Entity messages this replica has "
                                  "waiting on each host", labels=["host"])
        admitted = GaugeMetricFamily("rthub_host_lane_admitted", "Client requests among them "
                                     "(bounded by RTHUB_HOST_QUEUE_LIMIT)", labels=["host"])
        delay = GaugeMetricFamily("rthub_host_lane_delay_seconds", "Age of the oldest message "
                                  "this replica has waiting on each host (compared with "
                                  "RTHUB_QUEUE_TARGET_MS)", labels=["host"])
        limit = GaugeMetricFamily("rthub_admission_queue_limit", "RTHUB_HOST_QUEUE_LIMIT: "
                                  "client requests one replica keeps waiting on one host")
        target = GaugeMetricFamily("rthub_admission_queue_target_seconds",
                                   "RTHUB_QUEUE_TARGET_MS in seconds: past it a host is behind")
        if self.system is not None:
            for host, (waiting, requests, oldest) in sorted(self.system.queues().items()):
                depth.add_metric([host], waiting)
                admitted.add_metric([host], requests)
                delay.add_metric([host], oldest)
            settings = self.system.settings
            limit.add_metric([], settings.host_queue_limit)
            target.add_metric([], settings.queue_target_ms / 1000)
        yield from (depth, admitted, delay, limit, target)


class AutoscalingFigures:
    """What the gateway's autoscaling policy reads (``serve.autoscaling.reported``), under
    the same name, and its target."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stats: Callable[[], dict[str, float]] | None = None
        self.settings: Settings | None = None
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figure = GaugeMetricFamily(
            f"rthub_autoscaling_{SOCKETS_METRIC}", f"The {SOCKETS_METRIC!r} figure this "
            "replica reports to Serve's autoscaling policy (its open sockets)")
        target = GaugeMetricFamily(
            "rthub_autoscaling_target_sockets_per_replica", "target_sockets_per_replica of "
            "RTHUB_GATEWAY_AUTOSCALING (the default when unset): the policy asks for "
            "ceil(sum of sockets / this) replicas")
        if self.stats is not None and self.settings is not None:
            figure.add_metric([], self.stats()[SOCKETS_METRIC])
            target.add_metric([], target_sockets(self.settings))
        yield from (figure, target)
