"""``cluster/ray-cluster.yaml`` passes Ray's own cluster-config validation (the steps ``ray
up`` runs before it calls the cloud), and agrees with the hub: the flags ``rthub up`` sets,
the gateway's custom resource, the env file's variables; the NLB registration of gateway
nodes against a local metadata service and botocore's model of ELBv2."""

from __future__ import annotations

import copy
import shlex
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster import aws_nlb
from rthub import config
from tests.cluster.test_serve_configs import NODE_ENV, gateway_app

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
RAW = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
# variables the env file may hold that rthub/config.py does not read
OTHERS = {"AWS_DEFAULT_REGION", "NLB_TARGET_GROUP_ARN", "RAY_REDIS_ADDRESS",
          "GCS_REDIS_PASSWORD"}


def test_rays_validator_accepts_it() -> None:
    """``prepare_config`` fills in the AWS defaults and merges setup commands; then Ray's
    JSON schema (ray/autoscaler/ray-schema.json) and its checks. The AWS resources
    themselves (profiles, groups) are only checked by ``ray up`` against the account."""
    prepared = prepare_config(copy.deepcopy(RAW))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] == "head"


def test_every_node_installs_the_hub_and_gateway_nodes_join_the_balancer() -> None:
    prepared = prepare_config(copy.deepcopy(RAW))
    install = RAW["setup_commands"][0]
    assert "rthub-*.whl" in install
    assert "[ml]" in install
    assert install in prepared["head_setup_commands"]
    assert install in prepared["worker_setup_commands"]
    gateway = prepared["available_node_types"]["gateway"]["worker_setup_commands"]
    assert gateway[0] == install
    assert "python -m cluster.aws_nlb" in gateway[1]


def test_start_commands_set_what_rthub_up_sets() -> None:
    for commands in (RAW["head_start_ray_commands"], RAW["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert "RAY_worker_niceness=0" in start
        assert "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0" in start
        assert ". /home/ray/rthub/rthub.env" in start
        assert "--metrics-export-port=8080" in start
    head = " ".join(RAW["head_start_ray_commands"])
    assert "serve deploy /home/ray/rthub/cluster/hub.serve.yaml" in head
    assert "--redis-password" in head  # GCS fault tolerance with RAY_REDIS_ADDRESS
    assert "RAY_gcs_rpc_server_reconnect_timeout_s" in " ".join(RAW["worker_start_ray_commands"])
    mounts = RAW["file_mounts"]
    assert mounts["/home/ray/rthub/cluster"] == "./cluster"
    assert not mounts["/home/ray/rthub/rthub.env"].startswith("./"), "secrets stay out of git"


def test_node_types_fit_the_serve_config() -> None:
    types = RAW["available_node_types"]
    gateway = next(d for d in gateway_app()["deployments"] if d["name"] == "gateway")
    wanted = gateway["ray_actor_options"]["resources"]
    assert all(types["gateway"]["resources"].get(k, 0) >= v for k, v in wanted.items())
    assert not any(k in types[t]["resources"] for t in ("head", "worker") for k in wanted)
    autoscaling = gateway_app()["args"]["RTHUB_GATEWAY_AUTOSCALING"]
    assert types["gateway"]["min_workers"] == autoscaling["min_replicas"]
    assert types["gateway"]["max_workers"] >= autoscaling["max_replicas"]
    assert types["head"]["resources"]["CPU"] == 0


def env_file() -> dict[str, str]:
    values = {}
    for line in (CLUSTER / "rthub.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, raw = line.partition("=")
            values[name] = " ".join(shlex.split(raw))  # as the shell reads it
    return values


def test_env_example_names_only_known_variables() -> None:
    values = env_file()
    known = {var.name for var in config.VARS}
    assert set(values) - known <= OTHERS, sorted(set(values) - known - OTHERS)
    # with real secrets in place of the placeholders, rthub.config takes the rest as is
    settings = config.load({**values, **{k: v for k, v in NODE_ENV.items()
                                         if k in ("RTHUB_JWT_SECRET", "RTHUB_ENCRYPTION_KEYS")}})
    assert settings.hosts == 16
    assert settings.blob_store.startswith("s3://")


class _Metadata(BaseHTTPRequestHandler):
    """EC2's IMDSv2, as far as ``instance_id`` uses it."""

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and self.headers[
            "X-aws-ec2-metadata-token-ttl-seconds"]
        self._answer(200 if ok else 400, b"token-1")

    def do_GET(self) -> None:
        ok = (self.path == "/latest/meta-data/instance-id"
              and self.headers["X-aws-ec2-metadata-token"] == "token-1")
        self._answer(200 if ok else 401, b"i-0abc\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/latest"
    server.shutdown()
    server.server_close()


def test_instance_id_through_imdsv2(metadata: str) -> None:
    assert aws_nlb.instance_id(metadata) == "i-0abc"


def test_register_sends_elbv2_the_instance_and_port() -> None:
    """Checked against botocore's model of the ELBv2 API (its Stubber validates the
    request's shape), with no AWS and no network."""
    arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/rthub-ws/0123"
    elbv2 = boto3.client("elbv2", region_name="us-west-2", aws_access_key_id="k",
                         aws_secret_access_key="s")
    with Stubber(elbv2) as stub:
        stub.add_response("register_targets", {}, {
            "TargetGroupArn": arn, "Targets": [{"Id": "i-0abc", "Port": 8000}]})
        aws_nlb.register(arn, "i-0abc", 8000, elbv2)
        stub.assert_no_pending_responses()


def test_no_target_group_means_nothing_to_register() -> None:
    assert aws_nlb.main({}) == 0
