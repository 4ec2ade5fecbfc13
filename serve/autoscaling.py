"""Gateway replicas scaled on open sockets, the load a realtime gateway actually carries.

Sockets served by a replica's own port are not Serve requests, so Serve's default policy
(ongoing requests) would see an idle gateway. Each replica reports its open sockets
(``Gateway.record_autoscaling_stats``) and ``SocketsPolicy`` asks for enough replicas to
keep ``target_sockets_per_replica`` on each. Serve wraps a custom policy with the config's
bounds and its ``upscale_delay_s`` / ``downscale_delay_s``: the long default downscale delay
here keeps a scale-down from cutting sockets in bursts (existing sockets never move to a new
replica; a removed replica's clients reconnect and resume).
"""

from __future__ import annotations

import math
from typing import Any

from ray.serve.config import AutoscalingConfig, AutoscalingContext, AutoscalingPolicy

from rthub.config import Settings

DEFAULT_TARGET_SOCKETS = 5000
DEFAULT_DOWNSCALE_DELAY_S = 600.0
SOCKETS_METRIC = "sockets"


def reported(open_sockets: int) -> dict[str, float]:
    """What a replica reports to the policy (``Gateway.record_autoscaling_stats``) and to
    Prometheus (``rthub_autoscaling_sockets``): one figure, read in one place."""
    return {SOCKETS_METRIC: float(open_sockets)}


def target_sockets(settings: Settings) -> float:
    """The sockets per replica the policy aims at (the default when autoscaling is off)."""
    wanted = settings.gateway_autoscaling or {}
    return float(wanted.get("target_sockets_per_replica", DEFAULT_TARGET_SOCKETS))


class SocketsPolicy:
    """Replicas = open sockets / target per replica, rounded up (bounds and delays are
    applied by Serve around it)."""

    def __init__(self, target_sockets_per_replica: float = DEFAULT_TARGET_SOCKETS) -> None:
        self.target = max(float(target_sockets_per_replica), 1.0)

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        reported = (ctx.aggregated_metrics or {}).get(SOCKETS_METRIC, {})
        if not reported:  # no report yet (replicas starting): keep what Serve aims at
            return ctx.target_num_replicas, {}
        sockets = sum(reported.values())
        return max(math.ceil(sockets / self.target), 1), {"sockets": sockets}


def deployment_scaling(settings: Settings) -> dict[str, Any]:
    """The gateway deployment's ``num_replicas`` or ``autoscaling_config``."""
    wanted = settings.gateway_autoscaling
    if not wanted:
        return {"num_replicas": settings.gateway_replicas}
    options = dict(wanted)
    target = options.pop("target_sockets_per_replica", DEFAULT_TARGET_SOCKETS)
    if settings.ingress != "direct":  # through the proxy a socket is an ongoing request
        options.setdefault("target_ongoing_requests", target)
        return {"autoscaling_config": AutoscalingConfig(**options)}
    options.pop("target_ongoing_requests", None)
    options.setdefault("downscale_delay_s", DEFAULT_DOWNSCALE_DELAY_S)
    policy = AutoscalingPolicy(policy_function=SocketsPolicy,
                               policy_kwargs={"target_sockets_per_replica": target})
    return {"autoscaling_config": AutoscalingConfig(**options, policy=policy)}
