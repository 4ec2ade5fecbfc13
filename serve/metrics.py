"""Prometheus metrics of one gateway replica (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    """A registry of its own, so several gateways in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge("rthub_connections", "Open WebSocket connections",
                                 registry=self.registry)
        self.refused = Counter("rthub_connections_refused_total",
                               "Upgrades refused before a socket opened", ["code"],
                               registry=self.registry)
        self.frames_in = Counter("rthub_frames_in_total", "Client frames by type", ["type"],
                                 registry=self.registry)
        self.frames_out = Counter("rthub_frames_out_total", "Server frames by type", ["type"],
                                  registry=self.registry)
        self.errors = Counter("rthub_errors_total", "Error replies by code", ["code"],
                              registry=self.registry)
        self.delivery_latency = Histogram(
            "rthub_delivery_latency_seconds", "Stream event age when handed to a socket",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
