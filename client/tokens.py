"""The token a connection presents: a string, or a provider (sync or async callable) asked
on every (re)connect and again before the current token's ``exp``.

The hub closes a socket whose token has expired (4401 "token expired"), so a provider's
fresh token is also handed to ``on_fresh`` (the ``Hub`` sends it as ``session.refresh`` on
the open socket); a refresh that fails is retried, with backoff, while the token is valid.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable

from client.backoff import backoff_delay

log = logging.getLogger(__name__)

TokenProvider = Callable[[], "str | Awaitable[str]"]
Renewal = Callable[[str], Awaitable[None]]

MIN_DELAY_S = 0.5  # a provider that hands out expired tokens is not asked in a busy loop


def token_exp(token: str) -> float | None:
    """The ``exp`` (seconds) of a JWT, read from its payload and not verified: the client
    only needs to know when to ask its provider for a fresh one. None when unreadable."""
    try:
        part = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def refresh_delay(exp: float, now: float, margin_s: float) -> float:
    """Seconds from ``now`` until a token expiring at ``exp`` is renewed: ``margin_s``
    before ``exp``, or half the time left when that is shorter than twice the margin (a
    4-second token is renewed after 2 s, not at once)."""
    remaining = exp - now
    delay = remaining / 2 if remaining < 2 * margin_s else remaining - margin_s
    return max(delay, MIN_DELAY_S)


def retry_delay(attempt: int, exp: float, now: float) -> float | None:
    """Seconds until retry ``attempt`` (1, 2...) of a failed renewal: backoff with full
    jitter, at most half the time the token has left. None once it has (nearly) expired:
    the hub's 4401 and the reconnect that follows ask the provider again."""
    remaining = exp - now
    if remaining <= 2 * 0.1:
        return None
    return max(min(backoff_delay(attempt - 1, 1.0, 30.0), remaining / 2), 0.1)


class TokenSource:
    """The current token; a provider's is renewed before it expires (and handed to
    ``on_fresh``), so neither the open socket nor a reconnect runs on an expired one."""

    def __init__(self, token: str | TokenProvider, margin_s: float = 60.0,
                 on_fresh: Renewal | None = None) -> None:
        self.provider = token
        self.margin_s = margin_s
        self.on_fresh = on_fresh
        self.current: str | None = None
        self._refresher: asyncio.Task | None = None

    @property
    def renewable(self) -> bool:
        """A provider can give a new token; a plain string cannot."""
        return callable(self.provider)

    async def fresh(self) -> str:
        """Ask the provider (a plain string is returned as is) and schedule the renewal."""
        self.stop()
        token = await self._ask()
        exp = token_exp(token)
        if self.renewable and exp is not None:
            self._refresher = asyncio.create_task(self._renew(exp))
        return token

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def _ask(self) -> str:
        token = self.provider() if callable(self.provider) else self.provider
        if inspect.isawaitable(token):
            token = await token
        self.current = str(token)
        return self.current

    async def _renew(self, exp: float) -> None:
        """Renew the token expiring at ``exp`` (then the next one, and so on), retrying a
        failed provider call or ``on_fresh`` while ``exp`` is ahead."""
        delay: float | None = refresh_delay(exp, time.time(), self.margin_s)
        attempt = 0
        while delay is not None:
            await asyncio.sleep(delay)
            try:
                token = await self._ask()
                if self.on_fresh is not None:
                    await self.on_fresh(token)
            except Exception as err:  # the application's provider, or the hub's reply
                attempt += 1
                delay = retry_delay(attempt, exp, time.time())
                log.warning("token refresh %d failed (%r); next in %s s", attempt, err,
                            "(the reconnect's)" if delay is None else f"{delay:.1f}")
                continue
            attempt = 0
            new_exp = token_exp(token)
            if new_exp is None:
                return  # a token without exp never needs renewing
            exp = new_exp
            delay = refresh_delay(exp, time.time(), self.margin_s)
