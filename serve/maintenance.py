"""Maintenance at the gateway: the admin route that announces it, and the delivery of an
announcement (from any replica, or ``rthub maintenance``, through ``fanout.maintenance``) to
this replica's sockets of the tenant, as an ephemeral ``system.maintenance`` frame."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from fanout.exports import export_policy
from fanout.maintenance import announce, decode
from rthub.errors import BadRequest, Forbidden, Unavailable
from rthub.maintenance import BadAnnouncement, content

if TYPE_CHECKING:
    from serve.auth import Identity
    from serve.connection import Connection
    from serve.gateway import GatewayCore

log = logging.getLogger(__name__)

ADMIN_SCOPE = "admin"


def deliver(connections: Iterable[Connection], data: bytes | str) -> int:
    """Send an announcement to the welcomed sockets of its tenant; how many got it."""
    tenant, found = decode(data)
    sent = 0
    for conn in list(connections):
        if conn.identity.tenant == tenant and conn.welcomed_ms:
            conn.send({"type": "system.maintenance", "content": dict(found)})
            sent += 1
    log.info("maintenance announced to %d sockets of tenant %s", sent, tenant)
    return sent


async def announce_route(core: GatewayCore, who: Identity,
                         read_body: Callable[[], Awaitable[Any]]) -> Response:
    """``POST /v1/admin/maintenance`` ``{message, at, duration?}`` (``admin``, checked before
    the body is read): to every connected client of the token's tenant, on every replica;
    202 once Redis has it."""
    if ADMIN_SCOPE not in who.scopes:
        raise Forbidden("announcing maintenance needs the 'admin' scope")
    body = await read_body()
    if not isinstance(body, dict):
        raise BadRequest('send {"message", "at", "duration"?}')
    try:
        found = content(body.get("message"), body.get("at"), body.get("duration"))
    except BadAnnouncement as err:
        raise BadRequest(str(err)) from None
    try:
        replicas = await announce(core.redis, who.tenant, found, export_policy(core.settings))
    except Exception as exc:  # Redis away: nothing reached the other replicas
        log.warning("maintenance announcement failed: %s", exc)
        raise Unavailable("could not announce through Redis; retry") from None
    core.audit.record(who.tenant, who.user, "maintenance.announce", None, at=found["at"])
    return JSONResponse({**found, "gateways": replicas}, status_code=202)

