"""The audit log: who did what to which room or message, when, and from which address.

Room rows come from ChatRoom events through the ``audit`` projector, in the transaction that
makes the action durable, so an action is never durable without its audit row (nor the
reverse); the gateway's own (failed authentication, refused addresses, floods, permission
denials, revocations) through ``serve.security.audit``, in batches.
The table refuses UPDATE, DELETE and TRUNCATE (migration 0003).
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from storage.chat import at, ms

_INSERT = """
INSERT INTO audit_log (tenant, at, actor, action, room_id, message_id, target, ip, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"""

_QUERY = """
SELECT id, at, actor, action, room_id, message_id, target, ip, details FROM audit_log
WHERE tenant = $1 AND id > $2 AND ($3::text IS NULL OR room_id = $3)
  AND ($4::text IS NULL OR actor = $4)
  AND ($5::text IS NULL OR action = $5 OR action LIKE $5 || '.%')
  AND ($7::text IS NULL OR ip = $7) AND ($8::timestamptz IS NULL OR at >= $8)
  AND ($9::timestamptz IS NULL OR at < $9)
ORDER BY id LIMIT $6"""


async def project(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """The ``audit`` projector."""
    await conn.executemany(_INSERT, [
        (r["tenant"], at(r["at_ms"]), r["actor"], r["action"], r.get("room_id"),
         r.get("message_id"), r.get("target"), r.get("ip") or None,
         json.dumps(r.get("details") or {})) for r in rows])


async def query(pool: asyncpg.Pool, tenant: str, after_id: int = 0, room: str | None = None,
                actor: str | None = None, action: str | None = None, limit: int = 100,
                ip: str | None = None, since_ms: int | None = None,
                until_ms: int | None = None) -> list[dict[str, Any]]:
    """One tenant's audit rows after ``after_id``, oldest first (page with the last id).
    ``action`` matches itself and its family (``auth`` matches ``auth.failed``)."""
    rows = await pool.fetch(_QUERY, tenant, after_id, room, actor, action, limit, ip,
                            None if since_ms is None else at(since_ms),
                            None if until_ms is None else at(until_ms))
    return [{"id": r["id"], "at_ms": ms(r["at"]), "actor": r["actor"], "action": r["action"],
             "room": r["room_id"], "message_id": r["message_id"], "target": r["target"],
             "ip": r["ip"], "details": json.loads(r["details"])} for r in rows]
