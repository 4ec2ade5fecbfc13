"""The token a connection presents: a string, or a provider (sync or async callable) asked
on every (re)connect and again ``margin_s`` before the current token's ``exp``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from client.backoff import token_exp

log = logging.getLogger(__name__)

TokenProvider = Callable[[], "str | Awaitable[str]"]


class TokenSource:
    """The current token; a provider's is refreshed before it expires, so a reconnect
    never presents an expired one (the hub checks tokens at the upgrade only)."""

    def __init__(self, token: str | TokenProvider, margin_s: float = 60.0) -> None:
        self.provider = token
        self.margin_s = margin_s
        self.current: str | None = None
        self._refresher: asyncio.Task | None = None

    async def fresh(self) -> str:
        """Ask the provider (a plain string is returned as is) and schedule the refresh."""
        token = self.provider() if callable(self.provider) else self.provider
        if inspect.isawaitable(token):
            token = await token
        self.current = str(token)
        exp = token_exp(self.current)
        if callable(self.provider) and exp is not None:
            self.stop()
            self._refresher = asyncio.create_task(self._refresh_at(exp))
        return self.current

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def _refresh_at(self, exp: float) -> None:
        await asyncio.sleep(max(exp - self.margin_s - time.time(), 1.0))
        self._refresher = None
        try:
            await self.fresh()
        except Exception:
            log.exception("the token provider failed; the next reconnect asks again")
