"""The gateway's entries in the audit log: failed authentication, refused addresses,
floods, permission denials, and admin actions (revocations).

Rooms audit their own actions in the transaction that makes them durable
(``storage.audit``); what the gateway refuses never reaches an entity, so the gateway writes
it here, in batches, off the request path. A flood of bad tokens must not become a flood of
inserts: past ``MAX_PER_S`` entries a second a replica counts what it drops instead
(``rthub_audit_dropped``). An entry whose token did not verify is filed under the tenant
the token claims (``details.verified: false``): the tenant it was aimed at reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import jwt

from storage import audit

log = logging.getLogger(__name__)

MAX_PER_S = 100
FLUSH_DELAY_S = 0.2


def claimed_tenant(token: str | None) -> str:
    """The tenant an unverified token names (``default`` when it names none)."""
    if not token:
        return "default"
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return "default"
    tenant = claims.get("tenant", "default")
    return tenant if isinstance(tenant, str) and 0 < len(tenant) <= 128 else "default"


class SecurityAudit:
    """Buffered audit rows of one replica."""

    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._rows: list[dict[str, Any]] = []
        self._window = (0, 0)  # (second, rows taken in it)
        self._flushing: asyncio.Task | None = None
        self.dropped = 0
        self.written = 0

    def record(self, tenant: str, actor: str, action: str, ip: str | None = None,
               target: str | None = None, **details: Any) -> None:
        """Queue one entry (written within ``FLUSH_DELAY_S``; dropped past the cap)."""
        second, taken = self._window
        now = int(time.time())
        if now != second:
            second, taken = now, 0
        if taken >= MAX_PER_S:
            self.dropped += 1
            return
        self._window = (second, taken + 1)
        row = {"tenant": tenant, "at_ms": int(time.time() * 1000), "actor": actor,
               "action": action, "ip": ip, "target": target, "details": details}
        self._rows.append(_storable(row))  # a forged claim must not fail the whole batch
        if self._flushing is None:
            with contextlib.suppress(RuntimeError):  # no loop: a test's plain call
                self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        rows: list[dict[str, Any]] = []
        try:
            await asyncio.sleep(FLUSH_DELAY_S)  # gather what arrives together
            rows, self._rows = self._rows, []
            pool = await self._pool()
            async with pool.acquire() as conn:
                await audit.project(conn, rows)
            self.written += len(rows)
        except Exception as err:  # the audit must not take a request down with it
            log.error("could not write %d audit entries: %s", len(rows), err)
        finally:
            self._flushing = None
            if self._rows:
                self._flushing = asyncio.get_running_loop().create_task(self._flush())


def _storable(value: Any) -> Any:
    """``value`` with NUL taken out of its text (PostgreSQL refuses it in text and jsonb):
    entries quote what clients sent, a refused token's claims included."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value
