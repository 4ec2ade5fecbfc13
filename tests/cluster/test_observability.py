"""The Grafana dashboard and the Prometheus alert rules read only metrics the hub exports:
the gateway's registry (operator port), the actor hosts' and the recommendation Router's
(Ray's metrics agent). A renamed metric fails here, not on an empty panel in production."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray.util.metrics
import yaml

from actors import host_metrics
from serve.deployments.recommender import Router
from serve.metrics import GatewayMetrics
from tests.cluster.promql import balanced, exported_names, metric_names, ray_exported_names

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
DASHBOARD = CLUSTER / "grafana" / "rthub-dashboard.json"
ALERTS = CLUSTER / "prometheus" / "rthub-alerts.yaml"
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")
KINDS = {ray.util.metrics.Counter: "counter", ray.util.metrics.Gauge: "gauge",
         ray.util.metrics.Histogram: "histogram"}


def router_metrics() -> set[tuple[str, str]]:
    """(name, kind) of what a recommendation Router records, read off a Router made here."""
    router = Router.func_or_class(a=None)
    found = set()
    for value in vars(router).values():
        kind = next((k for cls, k in KINDS.items() if isinstance(value, cls)), None)
        if kind is not None:
            found.add((value._name, kind))
    assert found, "the Router records no Ray metric any more: update this test"
    return found


@pytest.fixture(scope="module")
def known() -> set[str]:
    """Every metric name Prometheus can see from the hub."""
    return (exported_names(GatewayMetrics().registry) | host_metrics.exported_names()
            | ray_exported_names(router_metrics()))


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield panel["title"], target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(json.loads(DASHBOARD.read_text())["panels"])


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_extractor_reads_metric_names_and_skips_the_rest() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, variant) (rate(x_bucket{a="b(c"}[5m]))) '
            '/ on (pod) group_left (host) y_total offset 1h > 1e3 and bool z')
    assert metric_names(expr) == {"x_bucket", "y_total", "z"}
    assert metric_names("sum(rate(a_total[$__rate_interval]))") == {"a_total"}
    with pytest.raises(ValueError, match="no PromQL function"):
        metric_names("rat(a_total[5m])")
    assert not balanced("sum(rate(a[5m])")


EXPORTER_PROBE = """
from prometheus_client import REGISTRY, generate_latest
from ray._private.telemetry.open_telemetry_metric_recorder import OpenTelemetryMetricRecorder
recorder = OpenTelemetryMetricRecorder()
recorder.register_counter_metric("rthub_probe_c", "c")
recorder.register_gauge_metric("rthub_probe_g", "g")
recorder.register_histogram_metric("rthub_probe_h", "h", [1.0, 2.0])
for name in ("rthub_probe_c", "rthub_probe_g", "rthub_probe_h"):
    recorder.set_metric_value(name, {"t": "x"}, 1.0)
print(generate_latest(REGISTRY).decode())
"""


def test_ray_naming_rule_matches_the_installed_exporter() -> None:
    """The rule ``ray_exported_names`` applies is what Ray's own recorder renders (run in a
    process of its own: it registers with prometheus_client's global registry)."""
    out = subprocess.run([sys.executable, "-c", EXPORTER_PROBE], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    rendered = {line.split("{")[0].split(" ")[0] for line in out.splitlines()
                if line.startswith("ray_rthub_probe")}
    assert rendered == ray_exported_names([("rthub_probe_c", "counter"),
                                           ("rthub_probe_g", "gauge"),
                                           ("rthub_probe_h", "histogram")])
    # the hosts' module follows the same rule for its names
    assert all(name.startswith("ray_rthub_host_") for name in host_metrics.exported_names())


def test_dashboard_reads_only_exported_metrics(known: set[str]) -> None:
    exprs = list(dashboard_exprs())
    assert len(exprs) > 30
    for title, expr in exprs:
        assert balanced(expr), (title, expr)
        unknown = metric_names(expr) - known
        assert not unknown, f"panel {title!r} reads {sorted(unknown)}, which nothing exports"


def test_dashboard_covers_each_area() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_exprs()))
    for needed in ("rthub_connections", "rthub_frames_in_total", "rthub_frames_out_total",
                   "rthub_delivery_latency_seconds_bucket", "rthub_errors_total",
                   "rthub_requests_shed_total", "rthub_slow_clients_closed_total",
                   "rthub_host_queue_depth", "rthub_host_queue_delay_seconds",
                   "rthub_notifications_queued", "rthub_notification_deliveries",
                   "rthub_recommendations_total", "ray_rthub_host_residents"):
        assert needed in used, needed


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource"}
    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    assert len(rules) > 10
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert re.fullmatch(r"Rthub[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str), rule["alert"]
        assert balanced(rule["expr"]), rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]


def test_alert_rules_read_only_exported_metrics(known: set[str]) -> None:
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}, which nothing exports"
