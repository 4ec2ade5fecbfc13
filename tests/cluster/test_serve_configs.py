"""Every Serve config the hub ships passes Serve's own schema, each application's import path
imports, and its builder accepts the config's args the way Serve calls it, without deploying
anything; the gateway's builder refuses a wrong setting with ``rthub.config``'s one line."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve.deployment import Application
from ray.serve.schema import ServeDeploySchema

from rthub import config
from rthub.errors import ConfigError
from serve.config_args import SEPARATE_THREAD, from_args
from tests.certs import self_signed

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
KEY = "k1:" + base64.b64encode(b"k" * 32).decode()
NODE_ENV = {  # what every node's environment holds on a cluster (rthub.env.example)
    "POSTGRES_URL": "postgresql://rthub:secret@db.internal:5432/rthub",
    "REDIS_URL": "redis://fanout.internal:6379/0",
    "RTHUB_JWT_SECRET": "j" * 40,
    "RTHUB_ENCRYPTION_KEYS": KEY,
    "RTHUB_HOSTS": "16",
    "RTHUB_BLOB_STORE": "s3://rthub-attachments/prod",
}


def serve_configs() -> dict[str, dict[str, Any]]:
    """Every Serve config shipped: the YAML files, and the RayService's serveConfigV2."""
    found = {path.name: yaml.safe_load(path.read_text())
             for path in sorted(CLUSTER.glob("*.serve.yaml"))}
    for doc in yaml.safe_load_all((CLUSTER / "kuberay" / "rayservice.yaml").read_text()):
        if doc["kind"] == "RayService":
            found["rayservice.yaml serveConfigV2"] = yaml.safe_load(doc["spec"]["serveConfigV2"])
    assert {"hub.serve.yaml", "recommend.serve.yaml"} <= set(found)
    return found


CONFIGS = serve_configs()


def gateway_app(name: str = "hub.serve.yaml") -> dict[str, Any]:
    return next(app for app in CONFIGS[name]["applications"]
                if app["import_path"] == "serve.app:app")


@pytest.fixture
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A cluster node's environment, with the certificate pair the KubeRay pods mount made
    here (``rthub.config`` loads it at deploy)."""
    cert, key, _ = self_signed(tmp_path)
    env = {**NODE_ENV, "RTHUB_TLS_CERT": cert, "RTHUB_TLS_KEY": key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_passes_serves_schema(name: str) -> None:
    """Serve's own model of a config (names unique, route prefixes unique, fields known)."""
    assert ServeDeploySchema.model_validate(CONFIGS[name]).applications


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_builder_accepts_its_args(name: str, node_env: dict[str, str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As Serve's build task does: import the path, call the builder with the args (the
    app's runtime_env in the environment), get an Application."""
    for app in ServeDeploySchema.model_validate(CONFIGS[name]).applications:
        for var, value in ((app.runtime_env or {}).get("env_vars") or {}).items():
            monkeypatch.setenv(var, value)
        built = call_user_app_builder_with_args_if_necessary(import_attr(app.import_path),
                                                             app.args)
        assert isinstance(built, Application), app.name
        named = {d.name for d in app.deployments}
        deployments = _deployment_names(built)
        assert named <= deployments, f"{app.name}: config names {named - deployments}"


def _deployment_names(app: Application) -> set[str]:
    """The deployments a built application binds (what a config's ``deployments`` name)."""
    names, todo = set(), [app._bound_deployment]
    while todo:
        bound = todo.pop()
        names.add(bound.name)
        for arg in (*bound.init_args, *bound.init_kwargs.values()):
            if isinstance(arg, Application):
                todo.append(arg._bound_deployment)
    return names


def test_gateway_settings_agree_with_serves_options() -> None:
    for name in ("hub.serve.yaml", "rayservice.yaml serveConfigV2"):
        cfg, app = CONFIGS[name], gateway_app(name)
        args = app["args"]
        assert cfg["http_options"]["port"] == args["RTHUB_HTTP_PORT"] != args["RTHUB_WS_PORT"]
        assert "request_timeout_s" not in cfg["http_options"], "it cuts WebSockets"
        assert app["runtime_env"]["env_vars"][SEPARATE_THREAD] == "0"
        gateway = next(d for d in app["deployments"] if d["name"] == "gateway")
        assert gateway["ray_actor_options"]["num_cpus"] == 0
        assert gateway["max_replicas_per_node"] == 1


def test_kuberay_carries_the_same_applications_as_hub_serve_yaml() -> None:
    hub, kube = CONFIGS["hub.serve.yaml"], CONFIGS["rayservice.yaml serveConfigV2"]
    for key in ("applications", "http_options", "proxy_location"):
        assert kube[key] == hub[key], key


def test_recommend_app_is_the_same_in_hub_and_its_own_config() -> None:
    """recommend.serve.yaml (``rthub up``, the ML team) and the hub's config ship one app."""
    own = CONFIGS["recommend.serve.yaml"]["applications"][0]
    hub = next(a for a in CONFIGS["hub.serve.yaml"]["applications"] if a["name"] == own["name"])
    assert hub["import_path"] == own["import_path"]
    assert hub["args"] == own["args"]
    assert own["name"] == config.load({}).recommend_app


def test_gateway_autoscaling_comes_from_its_args(node_env: dict[str, str]) -> None:
    settings = from_args(gateway_app()["args"])
    assert settings.gateway_autoscaling == {"min_replicas": 2, "max_replicas": 20,
                                            "target_sockets_per_replica": 10000,
                                            "upscale_delay_s": 30, "downscale_delay_s": 600}
    assert (settings.http_host, settings.ws_port, settings.operator_host) == (
        "0.0.0.0", 8000, "0.0.0.0")
    assert settings.hosts == 16  # from the node's environment


def test_a_wrong_value_fails_with_configs_own_line() -> None:
    args = {**gateway_app()["args"], "RTHUB_WS_PORT": "lots"}
    with pytest.raises(ConfigError) as raised:
        from_args(args, NODE_ENV)
    with pytest.raises(ConfigError) as direct:
        config.load({**NODE_ENV, "RTHUB_WS_PORT": "lots"})
    assert str(raised.value) == str(direct.value) == (
        "RTHUB_WS_PORT must be an integer from 1 to 65535, got 'lots'")


def test_an_unknown_or_secret_arg_is_refused() -> None:
    with pytest.raises(ConfigError, match="'RTHUB_WS_PROT', which is not a setting"):
        from_args({"RTHUB_WS_PROT": 8000}, NODE_ENV)
    with pytest.raises(ConfigError, match="RTHUB_JWT_SECRET is a secret"):
        from_args({"RTHUB_JWT_SECRET": "x" * 40}, NODE_ENV)


def test_what_rthub_up_would_have_made_must_be_set() -> None:
    env = {k: v for k, v in NODE_ENV.items()
           if k not in ("REDIS_URL", "RTHUB_JWT_SECRET")}
    with pytest.raises(ConfigError, match=r"set REDIS_URL, RTHUB_JWT_SECRET or RTHUB_JWT_JWKS "
                                          r"in every node's environment"):
        from_args({}, env)


def test_args_values_become_the_text_of_variables() -> None:
    settings = from_args({"RTHUB_PINNED_ENTITIES": ["party:concert"], "RTHUB_GATEWAY_REPLICAS":
                          3, "RTHUB_JWT_AUDIENCE": None}, {**NODE_ENV,
                                                           "RTHUB_JWT_AUDIENCE": "app"})
    assert settings.gateway_replicas == 3
    assert settings.jwt_audience is None  # null unsets what the environment had
    assert settings.pinned
