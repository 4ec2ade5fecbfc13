"""Listening events in Postgres: the training data of the recommendation models
(``rthub ml train``) and the popularity the recommendation fallback answers with."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import asyncpg

from storage.chat import Projector, at


async def record(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """The ``listen`` projector."""
    await conn.executemany(
        "INSERT INTO listening_events (tenant, user_id, track, event, position_ms, context, "
        "at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(r["tenant"], r["user"], r["track"], r["event"], r.get("position_ms"), r["context"],
          at(r["at_ms"])) for r in rows])


def projectors() -> Mapping[str, Projector]:
    return {"listen": record}


async def export(pool: asyncpg.Pool, tenant: str | None = None,
                 since: datetime.datetime | None = None) -> list[tuple[str, str, float, str]]:
    """``(user, track, unix seconds, event)`` in time order: what a trainer reads."""
    rows = await pool.fetch(
        "SELECT user_id, track, extract(epoch FROM at) AS ts, event FROM listening_events "
        "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::timestamptz IS NULL OR at >= $2) "
        "ORDER BY at, id", tenant, since)
    return [(r["user_id"], r["track"], float(r["ts"]), r["event"]) for r in rows]


async def popular(pool: asyncpg.Pool, tenant: str, days: int, limit: int) -> list[str]:
    """The tenant's most played and added tracks of the last ``days`` days."""
    rows = await pool.fetch(
        "SELECT track FROM listening_events WHERE tenant = $1 AND at > now() - "
        "make_interval(days => $2) AND event IN ('play', 'completed', 'added') "
        "GROUP BY track ORDER BY count(*) DESC, max(at) DESC LIMIT $3", tenant, days, limit)
    return [r["track"] for r in rows]


async def recent(pool: asyncpg.Pool, tenant: str, user: str, context: str | None,
                 limit: int) -> list[str]:
    """The tracks ``user`` played or added lately (in ``context`` when given: a party or
    playlist's, whoever did it), oldest first: a history to recommend from."""
    rows = await pool.fetch(
        "SELECT track FROM listening_events WHERE tenant = $1 AND "
        "($3::text IS NULL AND user_id = $2 OR context = $3) AND event IN ('play', "
        "'completed', 'added') ORDER BY at DESC, id DESC LIMIT $4", tenant, user, context,
        limit)
    return [r["track"] for r in reversed(rows)]
