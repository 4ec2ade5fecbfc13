"""Put this EC2 instance behind the WebSocket port's Network Load Balancer.

``ray up``'s autoscaler launches gateway nodes one at a time and knows nothing of load
balancers, and a balancer sends clients only to targets it knows: each gateway node runs
``python -m cluster.aws_nlb`` in its setup commands (``cluster/ray-cluster.yaml``) and
registers itself with the target group ``NLB_TARGET_GROUP_ARN`` on ``RTHUB_WS_PORT``. The
target group's health check (``GET /healthz`` on that port) keeps clients off the node until
its gateway replica serves, and off it again while the replica drains. A terminated node
fails its checks and gets no clients. KubeRay needs none of this (a ``LoadBalancer``
Service, ``cluster/kuberay/``).
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

IMDS = "http://169.254.169.254/latest"  # EC2's instance metadata service (IMDSv2)


def instance_id(imds: str = IMDS, timeout_s: float = 2.0) -> str:
    """This instance's id, through IMDSv2 (a session token first, then the read)."""
    token_request = urllib.request.Request(
        f"{imds}/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_request, timeout=timeout_s) as answer:
        token = answer.read().decode()
    read = urllib.request.Request(f"{imds}/meta-data/instance-id",
                                  headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(read, timeout=timeout_s) as answer:
        return answer.read().decode().strip()


def register(target_group_arn: str, instance: str, port: int, elbv2: Any = None) -> None:
    """Add ``instance:port`` to the target group (a target already there is left as is)."""
    if elbv2 is None:
        import boto3

        elbv2 = boto3.client("elbv2")
    elbv2.register_targets(TargetGroupArn=target_group_arn,
                           Targets=[{"Id": instance, "Port": port}])


def main(environ: dict[str, str] | None = None) -> int:
    """Register this instance if ``NLB_TARGET_GROUP_ARN`` is set; 0 when done or not asked."""
    env = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    arn = env.get("NLB_TARGET_GROUP_ARN")
    if not arn:
        log.info("NLB_TARGET_GROUP_ARN is unset: not registering with a load balancer")
        return 0
    port = int(env.get("RTHUB_WS_PORT", "8000"))
    instance = instance_id()
    register(arn, instance, port)
    log.info("registered %s:%d with %s", instance, port, arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
