"""Playlist history in Postgres: the op log and milestone snapshots, as projections of the
Playlist entity's events, and the reads that serve ``playlist.history`` and old versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from storage.chat import Projector, at, ms


async def _ops(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    await conn.executemany(
        "INSERT INTO playlist_ops (tenant, playlist_id, version, op, author, client_id, "
        "client_seq, at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)",
        [(r["tenant"], r["playlist_id"], r["version"], r["op"], r["author"], r["client_id"],
          r["client_seq"], at(r["at_ms"])) for r in rows])


async def _snapshots(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    await conn.executemany(
        "INSERT INTO playlist_snapshots (tenant, playlist_id, version, items) "
        "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
        [(r["tenant"], r["playlist_id"], r["version"], r["items"]) for r in rows])


def projectors() -> Mapping[str, Projector]:
    return {"playlist.op": _ops, "playlist.snapshot": _snapshots}


async def ops(pool: asyncpg.Pool, tenant: str, playlist: str, after: int, upto: int,
              limit: int) -> list[dict[str, Any]]:
    """Committed ops with ``after < version <= upto``, oldest first."""
    rows = await pool.fetch(
        "SELECT version, op, author, client_id, client_seq, at FROM playlist_ops "
        "WHERE tenant = $1 AND playlist_id = $2"
        " AND version > $3 AND version <= $4 ORDER BY version LIMIT $5",
        tenant, playlist, after, upto, limit)
    return [{"version": r["version"], "op": json.loads(r["op"]) if r["op"] else None,
             "author": r["author"], "client_id": r["client_id"], "client_seq": r["client_seq"],
             "ts_ms": ms(r["at"])} for r in rows]


async def snapshot_before(pool: asyncpg.Pool, tenant: str, playlist: str, version: int
                          ) -> tuple[int, list[list[Any]]] | None:
    """The newest milestone at or before ``version``: (its version, [[item_id, track]])."""
    row = await pool.fetchrow(
        "SELECT version, items FROM playlist_snapshots WHERE tenant = $1 AND playlist_id = $2 "
        "AND version <= $3 ORDER BY version DESC LIMIT 1", tenant, playlist, version)
    return None if row is None else (row["version"], json.loads(row["items"]))
