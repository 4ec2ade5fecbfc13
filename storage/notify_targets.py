"""Notification targets in Postgres (``POST /v1/devices``): registered per user, read by the
dispatcher, pruned when a provider says a token is dead."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def register(pool: asyncpg.Pool, tenant: str, user: str, target: dict[str, Any],
                   per_user: int) -> bool:
    """Keep ``target`` (``{kind, address, app, data}``) for ``user`` (moved from another
    user if it was theirs); True when it is new. Past ``per_user`` targets the least
    recently registered go."""
    async with pool.acquire() as conn, conn.transaction():
        new = await conn.fetchval(
            "INSERT INTO notification_targets AS t (tenant, kind, address, user_id, app, data) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (tenant, kind, address) DO "
            "UPDATE SET user_id = $4, app = $5, data = $6::jsonb, created_at = now() "
            "RETURNING (xmax = 0)", tenant, target["kind"], target["address"], user, target["app"],
            json.dumps(target["data"]))
        await conn.execute(
            "DELETE FROM notification_targets WHERE (tenant, kind, address) IN (SELECT tenant, "
            "kind, address FROM notification_targets WHERE tenant = $1 AND user_id = $2 "
            "ORDER BY created_at DESC OFFSET $3)", tenant, user, per_user)
        return bool(new)


async def remove(pool: asyncpg.Pool, tenant: str, user: str | None, kind: str, address: str
                 ) -> bool:
    """Forget a target (of ``user`` when given: a user removes only their own)."""
    found = await pool.fetchval(
        "DELETE FROM notification_targets WHERE tenant = $1 AND kind = $2 AND address = $3 "
        "AND ($4::text IS NULL OR user_id = $4) RETURNING 1", tenant, kind, address, user)
    return found is not None


async def of_users(pool: asyncpg.Pool, tenant: str, users: list[str]
                   ) -> dict[str, list[dict[str, Any]]]:
    """Each user's targets (``{kind, address, app, data}``), oldest first."""
    rows = await pool.fetch(
        "SELECT user_id, kind, address, app, data FROM notification_targets "
        "WHERE tenant = $1 AND user_id = ANY($2::text[]) ORDER BY created_at", tenant, users)
    found: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(r["user_id"], []).append(
            {"kind": r["kind"], "address": r["address"], "app": r["app"],
             "data": json.loads(r["data"])})
    return found


async def listing(pool: asyncpg.Pool, tenant: str, user: str) -> list[dict[str, Any]]:
    """What ``GET /v1/devices`` shows (Web Push keys left out)."""
    rows = await pool.fetch(
        "SELECT kind, address, app, created_at, last_sent_at FROM notification_targets "
        "WHERE tenant = $1 AND user_id = $2 ORDER BY created_at", tenant, user)
    return [{"kind": r["kind"], "address": r["address"], "app": r["app"],
             "created_ms": int(r["created_at"].timestamp() * 1000),
             "last_sent_ms": (int(r["last_sent_at"].timestamp() * 1000)
                              if r["last_sent_at"] else None)} for r in rows]


async def prune(pool: asyncpg.Pool, tenant: str, kind: str, address: str) -> None:
    """A provider said this token or subscription is dead: never send to it again."""
    await pool.execute("DELETE FROM notification_targets WHERE tenant = $1 AND kind = $2 AND "
                       "address = $3", tenant, kind, address)


async def used(pool: asyncpg.Pool, tenant: str, sent: list[tuple[str, str]]) -> None:
    """Mark targets a send reached (``last_sent_at``)."""
    if sent:
        await pool.execute(
            "UPDATE notification_targets t SET last_sent_at = now() FROM unnest($2::text[], "
            "$3::text[]) AS s(kind, address) WHERE t.tenant = $1 AND t.kind = s.kind AND "
            "t.address = s.address", tenant, [k for k, _ in sent], [a for _, a in sent])
