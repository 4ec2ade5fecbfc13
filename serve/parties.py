"""The listening party messages of PROTOCOL.md at the gateway: one handler per type.

The party entity orders every control and owns the playback state; the gateway follows the
party's topic for the socket, passes the socket's id as the device for quality tiers, and
records each device's reported drift and tier changes in the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.kinds.party_types import (
    Control,
    Create,
    End,
    HandOver,
    Join,
    Leave,
    Quality,
    QueueOp,
    Remove,
    Report,
)
from rthub.errors import BadRequest
from serve.handlers import entity_fields, entity_id, follow_topic, handles

if TYPE_CHECKING:
    from serve.connection import Connection
    from serve.gateway import GatewayCore

def party_of(content: dict[str, Any]) -> str:
    return entity_id(content, "party")


def _fields(conn: Connection, content: dict[str, Any]) -> dict[str, Any]:
    return entity_fields(content, conn.identity.user, "party")


@handles("party.create")
async def party_create(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = dict(frame["content"])
    party = entity_id(content, "party_id", new=True)
    content.pop("party_id", None)
    reply = await core.party(conn, party).ask(Create.decode(entity_fields(
        content, conn.identity.user)))
    return {**reply, **await follow_topic(core, conn, f"party:{party}")}


@handles("party.join")
async def party_join(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    party = party_of(frame["content"])
    reply = await core.party(conn, party).ask(Join(conn.identity.user))
    return {**reply, **await follow_topic(core, conn, f"party:{party}")}


@handles("party.leave")
async def party_leave(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    party = party_of(frame["content"])
    reply = await core.party(conn, party).ask(Leave(conn.identity.user, conn.id))
    await core.unfollow(conn, f"party:{party}")
    return reply


@handles("party.control", pipelined=True)
async def party_control(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await core.party(conn, party_of(content)).ask(
        Control.decode(_fields(conn, content)))


@handles("party.queue", pipelined=True)
async def party_queue(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    return await core.party(conn, party_of(content)).ask(
        QueueOp.decode(_fields(conn, content)))


@handles("party.quality", pipelined=True)
async def party_quality(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    reply = await core.party(conn, party_of(content)).ask(
        Quality.decode({**_fields(conn, content), "device": conn.id}))
    if reply.get("changed"):
        core.metrics.tier_changes.inc()
    return reply


@handles("party.report", pipelined=True)
async def party_report(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    content = frame["content"]
    reply = await core.party(conn, party_of(content)).ask(
        Report.decode(_fields(conn, content)))
    if reply.get("drift_ms") is not None:
        core.metrics.party_drift.observe(abs(reply["drift_ms"]) / 1000)
    return reply


async def _to_member(core: GatewayCore, conn: Connection, frame: dict[str, Any],
                     message: type[HandOver] | type[Remove], what: str) -> dict:
    """A host's message about another member (``user`` in the content names them)."""
    content = frame["content"]
    target = content.get("user")
    if not isinstance(target, str):
        raise BadRequest(f"{frame['type']} needs the 'user' {what}")
    return await core.party(conn, party_of(content)).ask(message(conn.identity.user, target))


@handles("party.host", pipelined=True)
async def party_host(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    return await _to_member(core, conn, frame, HandOver, "to hand over to")


@handles("party.kick", pipelined=True)
async def party_kick(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    return await _to_member(core, conn, frame, Remove, "to remove")


@handles("party.end", pipelined=True)
async def party_end(core: GatewayCore, conn: Connection, frame: dict[str, Any]) -> dict:
    return await core.party(conn, party_of(frame["content"])).ask(End(conn.identity.user))
