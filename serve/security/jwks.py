"""The public keys of RS256/ES256 tokens, from a JWKS file or an issuer's JWKS URL, kept
fresh so the issuer can rotate keys without the hub restarting.

Verification reads the keys in memory (picows' upgrade hook is synchronous and must not
wait on a network). A URL is fetched once when the gateway starts, then again every
RTHUB_JWT_JWKS_REFRESH_S in the background, and at once (at most every
``UNKNOWN_KID_FETCH_S``) when a token names a ``kid`` the set lacks: an issuer that
publishes its next key before signing with it (the usual rotation) is never refused; one
that signs first gets its first tokens refused for a moment with a message saying to
retry. A failed fetch keeps the keys already known. A file is read again when it changes.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from typing import Any

import httpx
import jwt

from rthub.errors import Unauthorized

log = logging.getLogger(__name__)

UNKNOWN_KID_FETCH_S = 10.0
FETCH_TIMEOUT_S = 5.0


class KeySet:
    """One JWKS source and the keys last read from it."""

    def __init__(self, source: str, refresh_s: float = 300.0) -> None:
        self.source = source
        self.is_url = source.startswith(("http://", "https://"))
        self.refresh_s = refresh_s
        self._keys: dict[str | None, Any] = {}
        self._mtime = 0.0
        self._next_fetch = 0.0  # monotonic time of the next scheduled fetch
        self._last_fetch = 0.0
        self._fetching = False
        self.fetches = 0
        self.failures = 0
        if self.is_url:
            try:
                with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT_S) as response:
                    self._load(json.loads(response.read()))
            except (OSError, ValueError, jwt.PyJWKSetError) as err:
                self.failures += 1
                log.error("could not fetch the JWKS %s (retrying in the background): %s",
                          source, err)
        else:
            self._read_file()

    def key(self, kid: object) -> Any:
        """The key a token's ``kid`` names (or the only key, for a token without one)."""
        keys = self._keys
        if kid in keys:
            return keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        if self.is_url and time.monotonic() - self._last_fetch >= UNKNOWN_KID_FETCH_S:
            self._next_fetch = 0.0  # the next tick fetches
            raise Unauthorized(f"no key with kid {kid!r} in the JWKS yet: the hub is fetching "
                               "it again, retry shortly")
        raise Unauthorized(f"no key with kid {kid!r} in the JWKS")

    def due(self) -> bool:
        """Whether ``refresh`` should run now (the gateway's timer asks every tick)."""
        if not self.is_url:
            self._read_file()
            return False
        return not self._fetching and time.monotonic() >= self._next_fetch

    async def refresh(self) -> None:
        """Fetch the URL again; keep the old keys if that fails."""
        self._fetching = True
        self._last_fetch = time.monotonic()
        self._next_fetch = self._last_fetch + self.refresh_s
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:
                response = await client.get(self.source)
                response.raise_for_status()
                self._load(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as err:
            self.failures += 1
            self._next_fetch = self._last_fetch + min(self.refresh_s, UNKNOWN_KID_FETCH_S)
            log.warning("could not refresh the JWKS %s (keeping %d keys): %s", self.source,
                        len(self._keys), err)
        finally:
            self._fetching = False

    def _load(self, document: Any) -> None:
        keys: dict[str | None, Any] = {}
        for jwk in jwt.PyJWKSet.from_dict(document).keys:
            keys[jwk.key_id] = jwk.key
        self._keys = keys
        self.fetches += 1

    def _read_file(self) -> None:
        try:
            mtime = os.stat(self.source).st_mtime
        except OSError as err:
            if not self._keys:
                raise ValueError(f"RTHUB_JWT_JWKS file {self.source!r}: {err}") from None
            return
        if mtime != self._mtime:
            with open(self.source) as file:
                self._load(json.load(file))
            self._mtime = mtime
