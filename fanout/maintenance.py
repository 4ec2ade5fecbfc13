"""Maintenance announcements through Redis: one pub/sub channel every gateway replica
listens on (``serve.control``), so an announcement made anywhere (``rthub maintenance``, the
admin route) reaches every connected client of the tenant, whichever replica holds it.

Plain PUBLISH, as the replicas' control channels use: on a Redis Cluster a publish reaches
every node's subscribers. The exported ``system.maintenance`` event is written once, by the
announcer, not by each replica.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanout.exports import Policy, export

CHANNEL = "rthub:maint"


def encode(tenant: str, content: Mapping[str, Any]) -> str:
    return json.dumps({"tenant": tenant, "content": dict(content)}, separators=(",", ":"))


def decode(data: bytes | str) -> tuple[str, dict[str, Any]]:
    """(tenant, frame content) of a message on ``CHANNEL``."""
    message = json.loads(data)
    return message["tenant"], message["content"]


async def announce(client: Any, tenant: str, content: Mapping[str, Any],
                   policy: Policy | None) -> int:
    """Publish ``content`` (``{message, at, duration_s?}``) to the tenant's clients on every
    replica, then export it (with ``policy``); how many replicas Redis handed it to (on a
    cluster: those subscribed through the node that took the publish)."""
    receivers = int(await client.publish(CHANNEL, encode(tenant, content)))
    if policy is not None:
        await export(client, tenant, "system.maintenance",
                     {**content, "duration_s": content.get("duration_s")}, policy)
    return receivers
