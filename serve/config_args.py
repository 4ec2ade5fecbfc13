"""The hub's settings for a Serve config deployment (``serve deploy``, KubeRay), where no
``rthub up`` launcher resolves anything.

The environment of every node (the env file ``ray up`` mounts, a Kubernetes Secret and
ConfigMap) holds what every process must agree on and the secrets; the application's
``args`` in the Serve config lay the gateway's own options over it. Both go through
``rthub.config.load``, so a wrong value fails the deploy with the same one line as
``rthub up`` (``serve status`` shows it). With no launcher there are no embedded servers and
no dev keys: what they would have filled in must be set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from rthub import config
from rthub.config import Settings
from rthub.errors import ConfigError

log = logging.getLogger(__name__)

# Serve's flag the gateway wants under direct ingress (``cluster.ingress``); it must be in
# the replicas' environment when they start: the app's runtime_env, or every node's.
SEPARATE_THREAD = "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"


def arg_text(value: Any) -> str:
    """A YAML value as the text an environment variable would hold."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return json.dumps(value)  # numbers, booleans, and objects (RTHUB_GATEWAY_AUTOSCALING)


def from_args(args: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """The environment's settings with ``args`` (``{VARIABLE: value}``) laid over them;
    ``ConfigError`` for an unknown name, a secret in ``args``, a bad value or a setting a
    cluster cannot do without."""
    known = {var.name: var for var in config.VARS}
    merged = dict(os.environ if environ is None else environ)
    for name, value in args.items():
        var = known.get(name)
        if var is None:
            raise ConfigError(f"the gateway's args name {name!r}, which is not a setting: use "
                              f"a variable of rthub/config.py, such as RTHUB_WS_PORT")
        if var.secret:
            raise ConfigError(f"{name} is a secret: set it in every node's environment (the "
                              f"env file, a Kubernetes Secret), not in the Serve config's "
                              f"args, which Ray's dashboard shows")
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = arg_text(value)
    settings = config.load(merged)
    _check_cluster(settings)
    if settings.ingress == "direct" and merged.get(SEPARATE_THREAD) != "0":
        log.warning("%s is not 0 here: set it in the app's runtime_env (cluster/hub.serve.yaml "
                    "does) or every Serve call into a gateway replica crosses threads",
                    SEPARATE_THREAD)
    if not settings.blob_store:
        log.warning("RTHUB_BLOB_STORE is empty: attachments stay on the disk of the node that "
                    "took them; on a cluster use s3://bucket/prefix")
    return settings


def _check_cluster(settings: Settings) -> None:
    """What ``rthub up`` would have made (embedded servers, dev keys) must be given."""
    missing = [name for name, value in (
        ("POSTGRES_URL", settings.postgres_url), ("REDIS_URL", settings.redis_url),
        ("RTHUB_ENCRYPTION_KEYS", settings.encryption_keys),
        ("RTHUB_JWT_SECRET or RTHUB_JWT_JWKS", settings.jwt_secret or settings.jwt_jwks),
    ) if not value]
    if missing:
        raise ConfigError(f"a hub deployed from a Serve config has no launcher to start "
                          f"embedded servers or make dev keys: set {', '.join(missing)} in "
                          f"every node's environment")
