"""The token revocation list, in Redis so every replica shares it.

Two kinds of entry: one token (its ``jti``, kept until the token would have expired
anyway), and a user's cutoff (every token of theirs issued at or before a time: "log out
everywhere", a stolen device). Each replica keeps a copy in memory, so the upgrade hook
checks without I/O, and reloads it when the list's version changes: the gateway's timer
reads one key every tick, so a token revoked anywhere has its open sockets closed (4410)
within one tick everywhere, and the replica that took the revocation closes its own at
once. The keys share a hash tag: one slot of a Redis Cluster, one MULTI.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from serve.auth import Identity, TokenRevoked

log = logging.getLogger(__name__)

_TOKENS = "rthub:revoked:{r}:tokens"  # zset entry(tenant, jti) -> expiry (s)
_USERS = "rthub:revoked:{r}:users"  # hash entry(tenant, user) -> cutoff (s)
_VERSION = "rthub:revoked:{r}:version"  # incremented by every change


def entry(tenant: str, name: str) -> str:
    """A user's or token's entry: the tenant's length first, so that tenant 'acme' with
    user 'eu:bob' is not tenant 'acme:eu' with user 'bob' (one tenant's admin must not
    revoke another tenant's users)."""
    return f"{len(tenant)}:{tenant}:{name}"


class Revocations:
    """A replica's copy of the revocation list."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.tokens: set[str] = set()
        self.users: dict[str, int] = {}
        self.version: int | None = None  # the version of the copy (None: never loaded)
        self._local = 0  # revocations made here: a reload read before one must not undo it

    def check(self, identity: Identity) -> None:
        """Raise ``TokenRevoked`` for a token on the list (``TokenVerifier.revoked``)."""
        if not self.tokens and not self.users:
            return
        if identity.token_id is not None and \
                entry(identity.tenant, identity.token_id) in self.tokens:
            raise TokenRevoked("token has been revoked")
        cutoff = self.users.get(entry(identity.tenant, identity.user))
        if cutoff is not None and (identity.issued_at is None or identity.issued_at <= cutoff):
            raise TokenRevoked("token has been revoked (every token of this user issued "
                               "before the revocation)")

    def covers(self, identity: Identity) -> bool:
        try:
            self.check(identity)
        except TokenRevoked:
            return True
        return False

    async def revoke_token(self, tenant: str, token_id: str, expires_at: int) -> None:
        """Revoke one token until it would have expired."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(_TOKENS, {entry(tenant, token_id): max(expires_at, now + 1)})
            pipe.zremrangebyscore(_TOKENS, "-inf", now)
            pipe.incr(_VERSION)
            await pipe.execute()
        self._local += 1
        self.tokens.add(entry(tenant, token_id))

    async def revoke_user(self, tenant: str, user: str, before: int | None = None) -> int:
        """Revoke every token of ``user`` issued at or before ``before`` (now by default)."""
        cutoff = int(time.time()) if before is None else before
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_USERS, entry(tenant, user), cutoff)
            pipe.incr(_VERSION)
            await pipe.execute()
        self._local += 1
        self.users[entry(tenant, user)] = cutoff
        return cutoff

    async def reload_if_changed(self) -> bool:
        """Read the version; on a change, the whole list. True when it changed."""
        raw = await self.redis.get(_VERSION)
        version = int(raw) if raw is not None else 0
        if version == self.version:
            return False
        local = self._local
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(_TOKENS, time.time(), "+inf")
            pipe.hgetall(_USERS)
            pipe.get(_VERSION)
            tokens, users, raw = await pipe.execute()
        read_tokens = {t.decode() if isinstance(t, bytes) else t for t in tokens}
        read_users = {(k.decode() if isinstance(k, bytes) else k): int(v)
                      for k, v in users.items()}
        if self._local != local:
            # revoked here while the list was read: the read may predate it, and replacing
            # the copy would let the revoked token in until the next tick. Keep both, and
            # read the whole list again next tick.
            self.tokens |= read_tokens
            self.users = {key: max(read_users.get(key, 0), self.users.get(key, 0))
                          for key in read_users.keys() | self.users.keys()}
            self.version = None
            return True
        self.tokens, self.users = read_tokens, read_users
        self.version = int(raw) if raw is not None else 0
        return True
