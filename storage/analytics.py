"""The admin analytics' figures that PostgreSQL already holds: notification outcomes (the
notifier's deliveries, written by another process than the gateway) and the tracks skipped
most in listening parties (the listening log the journal writes with each skip)."""

from __future__ import annotations

from typing import Any

import asyncpg


async def notification_outcomes(pool: asyncpg.Pool, tenant: str, minutes: int
                                ) -> list[dict[str, Any]]:
    """Deliveries whose state last changed in each of the last ``minutes`` minutes:
    ``[{minute_ms, state, channel, count}]``."""
    rows = await pool.fetch(
        "SELECT (extract(epoch FROM date_trunc('minute', updated_at)) * 1000)::bigint AS m, "
        "state, channel, count(*) AS n FROM notification_deliveries WHERE tenant = $1 AND "
        "updated_at > date_trunc('minute', now()) - make_interval(mins => $2 - 1) "
        "GROUP BY 1, 2, 3 ORDER BY 1", tenant, minutes)
    return [{"minute_ms": r["m"], "state": r["state"], "channel": r["channel"],
             "count": r["n"]} for r in rows]


async def skipped_tracks(pool: asyncpg.Pool, tenant: str, minutes: int, limit: int
                         ) -> list[dict[str, Any]]:
    """The tracks skipped most in parties over the last ``minutes`` minutes."""
    rows = await pool.fetch(
        "SELECT track, count(*) AS n FROM listening_events WHERE tenant = $1 AND "
        "at > now() - make_interval(mins => $2) AND event = 'skip' AND context LIKE 'party:%' "
        "GROUP BY track ORDER BY n DESC, track LIMIT $3", tenant, minutes, limit)
    return [{"track": r["track"], "skips": r["n"]} for r in rows]
