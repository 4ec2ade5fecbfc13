"""``cluster/kuberay/rayservice.yaml``: every document parses and is a kind we expect, and the
pieces agree with each other and with the hub (ports, labels, settings, secrets, GCS fault
tolerance, the load balancer's settings, Prometheus' ports). Its serveConfigV2 is checked
with the other Serve configs (``test_serve_configs``). No KubeRay CRD schema ships in a PyPI
or npm package, so the RayService is not validated against KubeRay's own schema here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rthub import config
from tests.cluster.test_serve_configs import NODE_ENV, gateway_app

MANIFEST = Path(__file__).resolve().parents[2] / "cluster" / "kuberay" / "rayservice.yaml"
DOCS = list(yaml.safe_load_all(MANIFEST.read_text()))
KINDS = {("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("ray.io/v1", "RayService"),
         ("v1", "Service"), ("monitoring.coreos.com/v1", "PodMonitor"),
         ("networking.k8s.io/v1", "NetworkPolicy")}
RAY_ENV = {"RAY_worker_niceness": "0", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def doc(kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in DOCS if d["kind"] == kind
                and (name is None or d["metadata"]["name"] == name))


CLUSTER = doc("RayService")["spec"]["rayClusterConfig"]
GROUPS = {g["groupName"]: g for g in CLUSTER["workerGroupSpecs"]}
PODS = {"head": CLUSTER["headGroupSpec"]["template"],
        **{name: group["template"] for name, group in GROUPS.items()}}


def container(group: str) -> dict[str, Any]:
    return PODS[group]["spec"]["containers"][0]


def ports(group: str) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(group)["ports"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_document_is_a_kind_we_deploy() -> None:
    assert all(d and d.get("apiVersion") and d.get("kind") and d["metadata"]["name"]
               for d in DOCS)
    assert {(d["apiVersion"], d["kind"]) for d in DOCS} == KINDS


def test_every_pod_gets_the_settings_and_the_flags() -> None:
    for group in PODS:
        env = {e["name"]: e for e in container(group)["env"]}
        for name, value in RAY_ENV.items():
            assert env[name]["value"] == value, (group, name)
        for name in ("POSTGRES_URL", "REDIS_URL", "RTHUB_JWT_SECRET", "RTHUB_ENCRYPTION_KEYS"):
            assert "secretKeyRef" in env[name]["valueFrom"], (group, name)  # never inline
        assert container(group)["envFrom"] == [{"configMapRef": {"name": "rthub-config"}}]
        assert PODS[group]["spec"]["serviceAccountName"] == doc("ServiceAccount")[
            "metadata"]["name"]


def test_the_config_map_and_secrets_make_valid_settings() -> None:
    data = doc("ConfigMap", "rthub-config")["data"]
    known = {var.name for var in config.VARS}
    names = set(data) | {e["name"] for e in container("head")["env"]}
    assert names - known == set(RAY_ENV), sorted(names - known)
    # the certificate pair exists only in the pods (test_serve_configs loads a real one)
    without_tls = {k: v for k, v in data.items() if not k.startswith("RTHUB_TLS_")}
    settings = config.load({**NODE_ENV, **without_tls})
    assert settings.hosts == int(data["RTHUB_HOSTS"])


def test_tls_files_are_mounted_wherever_settings_are_read() -> None:
    """Serve's builder may run on any pod and loads the pair (``rthub.config``)."""
    data = doc("ConfigMap", "rthub-config")["data"]
    folder = str(Path(data["RTHUB_TLS_CERT"]).parent)
    assert str(Path(data["RTHUB_TLS_KEY"]).parent) == folder
    for group, pod in PODS.items():
        mounts = {m["mountPath"]: m["name"] for m in container(group)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert "secret" in volumes[mounts[folder]], group
    probe = container("gateway")["readinessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "ws", "scheme": "HTTPS"}


def test_ports_agree_with_the_serve_config() -> None:
    args = gateway_app("rayservice.yaml serveConfigV2")["args"]
    assert ports("gateway")["ws"] == args["RTHUB_WS_PORT"]
    assert ports("gateway")["operator"] == args["RTHUB_OPERATOR_PORT"]
    for group in PODS:  # Serve's proxy on every pod (KubeRay probes and routes "serve")
        assert ports(group)["serve"] == args["RTHUB_HTTP_PORT"]
        assert ports(group)["metrics"] == 8080
    assert "ws" not in ports("worker")
    assert "ws" not in ports("head")


def test_one_gateway_replica_per_gateway_pod() -> None:
    deployment = next(d for d in gateway_app("rayservice.yaml serveConfigV2")["deployments"]
                      if d["name"] == "gateway")
    resources = yaml.safe_load(yaml.safe_load(GROUPS["gateway"]["rayStartParams"]["resources"]))
    assert resources == deployment["ray_actor_options"]["resources"]
    autoscaling = gateway_app("rayservice.yaml serveConfigV2")["args"][
        "RTHUB_GATEWAY_AUTOSCALING"]
    assert GROUPS["gateway"]["minReplicas"] == autoscaling["min_replicas"]
    assert GROUPS["gateway"]["maxReplicas"] >= autoscaling["max_replicas"]
    assert CLUSTER["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_gcs_fault_tolerance_uses_a_secret() -> None:
    options = CLUSTER["gcsFaultToleranceOptions"]
    assert options["redisAddress"]
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"]["name"]
    assert "ray.io/ft-enabled" not in doc("RayService")["metadata"].get("annotations", {})


def test_websocket_load_balancer() -> None:
    service = doc("Service", "rthub-ws")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["sessionAffinity"] == "None"
    assert [p["targetPort"] for p in spec["ports"]] == ["ws"]
    assert matches(spec["selector"], PODS["gateway"]["metadata"]["labels"])
    assert not any(matches(spec["selector"], PODS[g]["metadata"]["labels"])
                   for g in ("head", "worker"))
    annotations = service["metadata"]["annotations"]
    idle = annotations[f"service.beta.kubernetes.io/aws-load-balancer-listener-attributes."
                       f"TCP-{spec['ports'][0]['port']}"]
    assert int(idle.split("=")[1]) > 2 * 30  # past two heartbeats (WS_HEARTBEAT_INTERVAL)
    assert not any("proxy-protocol" in key for key in annotations)


@pytest.mark.parametrize(("name", "port", "groups"), [
    ("rthub-gateway", "operator", {"gateway"}), ("rthub-ray", "metrics", set(PODS))])
def test_prometheus_scrapes_the_right_ports(name: str, port: str, groups: set[str]) -> None:
    monitor = doc("PodMonitor", name)["spec"]
    assert [e["port"] for e in monitor["podMetricsEndpoints"]] == [port]
    selector = monitor["selector"]["matchLabels"]
    kuberay = {"ray.io/is-ray-node": "yes"}  # KubeRay labels every Ray pod so
    selected = {g for g, pod in PODS.items()
                if matches(selector, {**pod["metadata"]["labels"], **kuberay})}
    assert selected == groups
    for group in groups:
        assert port in ports(group)


def test_network_policy_keeps_the_operator_port_to_prometheus() -> None:
    policy = doc("NetworkPolicy")["spec"]
    assert matches(policy["podSelector"]["matchLabels"], PODS["gateway"]["metadata"]["labels"])
    open_to_all = [rule for rule in policy["ingress"] if "from" not in rule]
    assert [p["port"] for rule in open_to_all for p in rule["ports"]] == [ports("gateway")["ws"]]
    operator = [rule for rule in policy["ingress"]
                if any(p["port"] == ports("gateway")["operator"] for p in rule.get("ports", []))]
    assert len(operator) == 1
    assert all("namespaceSelector" in f for f in operator[0]["from"])
