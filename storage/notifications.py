"""Notifications in Postgres: the durable queue the dispatchers claim from (highest priority
first, ``FOR UPDATE SKIP LOCKED``, a lease so a dispatcher that dies mid-send leaves its
claim to another), and each notification x channel's delivery state, which only moves
forward (queued -> sent -> delivered -> seen -> read; failed and skipped are final)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg

from rthub.errors import RateLimited
from storage.chat import Projector, at, ms

WAKE = "rthub_notify"  # the channel a new notification is announced on (LISTEN/NOTIFY)
ORDER = ("queued", "sent", "delivered", "seen", "read")
FULL_RETRY_MS = 1000  # what a refused sender is told to wait when the queue is full


async def enqueue(pool: asyncpg.Pool, tenant: str, note: dict[str, Any], queue_limit: int
                  ) -> tuple[dict[str, Any], bool]:
    """Accept one notification (a ``Notification.row``, with its ``channels``): (its status,
    True) once durable, or (the first one's, False) for an idempotency key seen before.
    ``rate_limited`` when ``queue_limit`` wait already."""
    idempotency_key = note["idempotency_key"]
    async with pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            earlier = await _by_key(conn, tenant, idempotency_key)
            if earlier is not None:
                return earlier, False
        waiting = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'queued'")
        if waiting >= queue_limit:
            raise RateLimited(f"the notification queue is full ({queue_limit} waiting); retry "
                              "later", FULL_RETRY_MS)
        ident = secrets.token_urlsafe(12)
        try:
            await conn.execute(
                "INSERT INTO notifications (tenant, id, user_id, category, priority, title, "
                "body, data, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)",
                tenant, ident, note["user_id"], note["category"], note["priority"], note["title"],
                note["body"], json.dumps(note["data"]), idempotency_key)
        except asyncpg.UniqueViolationError:  # the same key, sent at the same moment
            raise RateLimited("a request with this Idempotency-Key is being accepted; "
                              "retry to get its result", 100) from None
        await conn.executemany(
            "INSERT INTO notification_deliveries (tenant, id, channel, state) "
            "VALUES ($1, $2, $3, 'queued')", [(tenant, ident, c) for c in note["channels"]])
        await conn.execute(f"NOTIFY {WAKE}")
        return await status(conn, tenant, ident) or {}, True


async def enqueue_many(pool: asyncpg.Pool, tenant: str, notes: list[dict[str, Any]],
                       queue_limit: int) -> list[dict[str, Any]]:
    """Accept a batch in one transaction (all or none): ``[{id, status}]`` in order, the
    first result for an ``idempotency_key`` seen before. ``rate_limited`` when the batch
    does not fit under ``queue_limit``."""
    async with pool.acquire() as conn, conn.transaction():
        keys = [n["idempotency_key"] for n in notes if n.get("idempotency_key")]
        known = {r["idempotency_key"]: r["id"] for r in await conn.fetch(
            "SELECT idempotency_key, id FROM notifications WHERE tenant = $1 "
            "AND idempotency_key = ANY($2::text[])", tenant, keys)} if keys else {}
        fresh = [n for n in notes if n.get("idempotency_key") not in known]
        waiting = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'queued'")
        if waiting + len(fresh) > queue_limit:
            raise RateLimited(f"the notification queue is full ({waiting} of {queue_limit} "
                              f"waiting; this batch has {len(fresh)}); retry later",
                              FULL_RETRY_MS)
        rows, answers, channels = [], [], []
        for note in notes:
            key = note.get("idempotency_key")
            if key in known:
                answers.append({"id": known[key], "status": "accepted before"})
                continue
            ident = secrets.token_urlsafe(12)
            if key:
                known[key] = ident  # the same key twice in one batch: one notification
            rows.append((tenant, ident, note["user_id"], note["category"], note["priority"],
                         note["title"], note["body"], json.dumps(note["data"]), key))
            channels.extend((tenant, ident, c) for c in note["channels"])
            answers.append({"id": ident, "status": "queued"})
        try:
            await conn.executemany(
                "INSERT INTO notifications (tenant, id, user_id, category, priority, title, "
                "body, data, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, "
                "$9)", rows)
        except asyncpg.UniqueViolationError:
            raise RateLimited("a notification with one of these keys is being accepted; "
                              "retry to get its result", 100) from None
        await conn.executemany(
            "INSERT INTO notification_deliveries (tenant, id, channel, state) "
            "VALUES ($1, $2, $3, 'queued')", channels)
        await conn.execute(f"NOTIFY {WAKE}")
        return answers


async def _by_key(conn: asyncpg.Connection, tenant: str, key: str) -> dict[str, Any] | None:
    ident = await conn.fetchval(
        "SELECT id FROM notifications WHERE tenant = $1 AND idempotency_key = $2", tenant, key)
    return None if ident is None else await status(conn, tenant, ident)


async def figures(pool: asyncpg.Pool) -> tuple[int, dict[tuple[str, str], int]]:
    """(notifications waiting, {(channel, state): deliveries changed in the last hour})."""
    async with pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'queued'")
        rows = await conn.fetch(
            "SELECT channel, state, count(*) AS n FROM notification_deliveries "
            "WHERE updated_at > now() - interval '1 hour' GROUP BY channel, state")
    return queued, {(r["channel"], r["state"]): r["n"] for r in rows}


async def claim(pool: asyncpg.Pool, batch: int, lease_s: float) -> list[dict[str, Any]]:
    """Up to ``batch`` due notifications, highest priority first, leased for ``lease_s``: a
    claim not finished by then is due again (its dispatcher died). Each comes with its
    channels' ``{channel: [state, attempts]}`` and the digest it waits in, if any."""
    rows = await pool.fetch(
        "UPDATE notifications n SET due_at = now() + make_interval(secs => $2), "
        "attempts = n.attempts + 1 FROM (SELECT tenant, id FROM notifications "
        "WHERE status = 'queued' AND due_at <= now() ORDER BY priority DESC, created_at "
        "LIMIT $1 FOR UPDATE SKIP LOCKED) due WHERE n.tenant = due.tenant AND n.id = due.id "
        "RETURNING n.tenant, n.id, n.user_id, n.category, n.priority, n.title, n.body, n.data, "
        "n.attempts, n.created_at, n.digest_key, (SELECT jsonb_object_agg(d.channel, "
        "jsonb_build_array(d.state, d.attempts)) FROM notification_deliveries d "
        "WHERE d.tenant = n.tenant AND d.id = n.id) AS channels", batch, lease_s)
    found = [_claimed(r) for r in rows]
    found.sort(key=lambda r: (-r["priority"], r["created_ms"]))
    return found


def _claimed(r: asyncpg.Record) -> dict[str, Any]:
    return {**dict(r), "data": json.loads(r["data"]), "created_ms": ms(r["created_at"]),
            "channels": json.loads(r["channels"]) if r["channels"] else {}}


async def digest_into(pool: asyncpg.Pool, tenant: str, ident: str, key: str, due_ms: int
                      ) -> None:
    """Hold a notification in the digest ``key`` until ``due_ms`` (its claim not counted as
    an attempt)."""
    await pool.execute(
        "UPDATE notifications SET digest_key = $3, due_at = $4, attempts = attempts - 1 "
        "WHERE tenant = $1 AND id = $2", tenant, ident, key, at(due_ms))


async def digest_members(pool: asyncpg.Pool, tenant: str, key: str, lease_s: float,
                         limit: int) -> list[dict[str, Any]]:
    """The oldest ``limit`` notifications still waiting in the digest ``key``, leased to the
    caller (which sends them as one message; the rest make the next one)."""
    rows = await pool.fetch(
        "UPDATE notifications n SET due_at = now() + make_interval(secs => $3) "
        "FROM (SELECT tenant, id FROM notifications WHERE tenant = $1 AND digest_key = $2 "
        "AND status = 'queued' ORDER BY created_at LIMIT $4) m "
        "WHERE n.tenant = m.tenant AND n.id = m.id "
        "RETURNING n.tenant, n.id, n.user_id, n.category, n.priority, n.title, n.body, n.data, "
        "n.attempts, n.created_at, n.digest_key, (SELECT jsonb_object_agg(d.channel, "
        "jsonb_build_array(d.state, d.attempts)) FROM notification_deliveries d "
        "WHERE d.tenant = n.tenant AND d.id = n.id) AS channels", tenant, key, lease_s, limit)
    return sorted((_claimed(r) for r in rows), key=lambda r: r["created_ms"])


async def tried(pool: asyncpg.Pool, tenant: str, ident: str, channel: str, error: str) -> int:
    """A channel's send failed in a way worth retrying: counted and kept, still queued; the
    channel's attempts so far."""
    return await pool.fetchval(
        "UPDATE notification_deliveries SET attempts = attempts + 1, error = $4, "
        "updated_at = now() WHERE tenant = $1 AND id = $2 AND channel = $3 "
        "RETURNING attempts", tenant, ident, channel, error) or 0


async def finish(pool: asyncpg.Pool, tenant: str, ident: str, error: str | None = None
                 ) -> None:
    """The dispatcher is done with it: ``done``, or ``failed`` with the reason."""
    await pool.execute(
        "UPDATE notifications SET status = $3, error = $4 WHERE tenant = $1 AND id = $2",
        tenant, ident, "failed" if error else "done", error)


async def finish_many(pool: asyncpg.Pool, done: list[tuple[str, str]]) -> None:
    """Mark a batch ``done`` in one statement (the dispatcher's successes)."""
    await pool.execute(
        "UPDATE notifications n SET status = 'done' FROM unnest($1::text[], $2::text[]) "
        "AS d(tenant, id) WHERE n.tenant = d.tenant AND n.id = d.id",
        [t for t, _ in done], [i for _, i in done])


async def retry_at(pool: asyncpg.Pool, tenant: str, ident: str, delay_s: float,
                   error: str | None, counted: bool = True) -> None:
    """Due again after ``delay_s``: a retryable failure, or (not ``counted`` as an attempt)
    a channel waiting for its own retry, the end of quiet hours or a digest."""
    await pool.execute(
        "UPDATE notifications SET due_at = now() + make_interval(secs => $3), "
        "error = coalesce($4, error), attempts = attempts - (CASE WHEN $5 THEN 0 ELSE 1 END) "
        "WHERE tenant = $1 AND id = $2", tenant, ident, delay_s, error, counted)


async def set_delivery(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """The ``notify.state`` projector: a channel's state moves forward only (a late ``sent``
    never undoes ``read``); ``failed`` records the provider's error, ``skipped`` why the
    user's preferences held it back; both are final."""
    await conn.executemany(
        "UPDATE notification_deliveries SET state = $4, error = $5, updated_at = $6, "
        "attempts = attempts + (CASE WHEN $4 IN ('sent', 'failed') THEN 1 ELSE 0 END) "
        "WHERE tenant = $1 AND id = $2 AND channel = $3 AND state NOT IN ('failed', 'skipped') "
        "AND (array_position($7::text[], state) < array_position($7::text[], $4) "
        "OR $4 IN ('failed', 'skipped'))",
        [(r["tenant"], r["id"], r["channel"], r["state"], r.get("error"), at(r["at_ms"]),
          list(ORDER)) for r in rows])


def projectors() -> Mapping[str, Projector]:
    return {"notify.state": set_delivery}


async def status(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, ident: str
                 ) -> dict[str, Any] | None:
    """What ``GET /v1/notifications/{id}`` shows: the notification and each channel's state."""
    row = await conn.fetchrow(
        "SELECT id, user_id, category, priority, title, status, attempts, error, created_at "
        "FROM notifications WHERE tenant = $1 AND id = $2", tenant, ident)
    if row is None:
        return None
    channels = await conn.fetch(
        "SELECT channel, state, error, attempts, updated_at FROM notification_deliveries "
        "WHERE tenant = $1 AND id = $2 ORDER BY channel", tenant, ident)
    return {"id": row["id"], "user_id": row["user_id"], "category": row["category"],
            "priority": row["priority"], "title": row["title"], "status": row["status"],
            "attempts": row["attempts"], "error": row["error"],
            "created_ms": ms(row["created_at"]),
            "channels": {c["channel"]: {"state": c["state"], "error": c["error"],
                                        "attempts": c["attempts"],
                                        "updated_ms": ms(c["updated_at"])} for c in channels}}
