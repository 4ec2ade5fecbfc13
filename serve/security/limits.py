"""Rate limits every replica shares: token buckets in Redis, one atomic script per bucket.

A rule (RTHUB_RATE_LIMITS) is ``scope:what=rate/burst``: scope ``user``, ``ip`` or
``tenant``; ``what`` a message type, ``*`` (every frame), ``connect`` or ``http``. A frame
is checked against every rule that names its type or ``*``, for its user, address and
tenant. Each bucket is one Redis hash changed by one Lua script (refill by the time Redis
keeps, then spend or refuse), so replicas never disagree and never race.

Cost: the checks of one event-loop turn go to Redis in one pipeline (one round trip for
every frame that arrived together), and a bucket found empty is refused locally until it
refills, so a flood costs Redis nothing (on a Redis Cluster, whose pipelines refuse
scripts, the checks go as concurrent calls instead). Redis down: the check lets the frame
through (a limiter must not take the hub down with it), counted in
``rthub_rate_limit_errors``.
A refused frame has still spent the tokens of the buckets that had them (the buckets are
checked independently; they live on different shards of a Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError

from rthub.errors import RateLimited

log = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV rate/s, burst, cost. Returns 0 (taken) or ms to wait.
_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now_ms end
tokens = math.min(burst, tokens + math.max(now_ms - at, 0) * rate / 1000)
local wait = 0
if tokens < cost then
  wait = math.ceil((cost - tokens) * 1000 / rate)
else
  tokens = tokens - cost
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str  # user, ip or tenant
    what: str  # a message type, *, connect or http
    rate: float
    burst: float


class RateLimiter:
    """The rules of one replica and the Redis they share."""

    def __init__(self, redis: Any, rules: Iterable[tuple[str, str, float, float]],
                 prefix: str = "rthub:rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._by_what: dict[str, list[Rule]] = {}
        for scope, what, rate, burst in rules:
            self._by_what.setdefault(what, []).append(Rule(scope, what, rate, burst))
        self._frame_rules = self._by_what.get("*", [])
        self._sha: str | None = None  # the script, loaded once
        self._pending: list[tuple[list[tuple[str, Rule]], asyncio.Future]] = []
        self._flush_scheduled = False
        self._empty_until: dict[str, float] = {}  # bucket -> monotonic time it has a token
        self.refused: dict[str, int] = {}  # scope:what -> frames refused (metrics)
        self.errors = 0  # checks Redis could not answer (let through)

    @property
    def active(self) -> bool:
        return bool(self._by_what)

    def rules_for(self, what: str, frame: bool = True) -> list[Rule]:
        """The rules a ``what`` passes: its own, and for frames the ``*`` ones."""
        own = self._by_what.get(what, [])
        return own + self._frame_rules if frame else own

    async def check(self, what: str, tenant: str, user: str | None, ip: str | None,
                    frame: bool = True) -> None:
        """Spend one token of every bucket ``what`` passes; ``RateLimited`` with the
        longest wait if any is empty."""
        rules = self.rules_for(what, frame)
        if not rules:
            return
        buckets = [(key, rule) for rule in rules
                   if (key := self._key(rule, tenant, user, ip)) is not None]
        now = time.monotonic()
        for key, rule in buckets:  # known empty: refused without asking Redis
            until = self._empty_until.get(key)
            if until is not None:
                if until > now:
                    self._refuse(rule, math.ceil((until - now) * 1000))
                del self._empty_until[key]
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((buckets, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        waits: list[int] = await future
        worst = max(range(len(waits)), key=waits.__getitem__, default=None)
        if worst is not None and waits[worst] > 0:
            key, rule = buckets[worst]
            self._empty_until[key] = time.monotonic() + waits[worst] / 1000
            if len(self._empty_until) > 100_000:  # bounded: forget the oldest half
                for stale in list(self._empty_until)[:50_000]:
                    del self._empty_until[stale]
            self._refuse(rule, waits[worst])

    def _refuse(self, rule: Rule, wait_ms: int) -> None:
        name = f"{rule.scope}:{rule.what}"
        self.refused[name] = self.refused.get(name, 0) + 1
        target = "this message type" if rule.what not in ("*", "connect", "http") else {
            "*": "messages", "connect": "connections", "http": "HTTP requests"}[rule.what]
        raise RateLimited(f"too many {target} for this {rule.scope} "
                          f"({rule.rate:g}/s, burst {rule.burst:g}); retry in {wait_ms} ms",
                          max(wait_ms, 1))

    def _key(self, rule: Rule, tenant: str, user: str | None, ip: str | None) -> str | None:
        if rule.scope == "user":  # the tenant's length first: 'acme' + 'eu:bob' is not
            # 'acme:eu' + 'bob' (a user of one tenant must not spend another's bucket)
            return None if user is None else (
                f"{self.prefix}:{{{len(tenant)}:{tenant}:{user}}}:{rule.what}")
        if rule.scope == "ip":
            return None if not ip else f"{self.prefix}:ip:{{{ip}}}:{rule.what}"
        return f"{self.prefix}:t:{{{tenant}}}:{rule.what}"

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._flush(pending))
        task.add_done_callback(_consume)

    async def _flush(self, pending: list[tuple[list[tuple[str, Rule]], asyncio.Future]]
                     ) -> None:
        """One pipeline for every check of the loop turn."""
        try:
            try:
                results = await self._run(pending)
            except NoScriptError:  # Redis restarted (or failed over): load it again
                self._sha = None
                results = await self._run(pending)
        except Exception as err:  # whatever it is, a check must answer: fail open
            self.errors += 1
            log.warning("rate limit check failed; letting %d requests through: %s",
                        len(pending), err)
            results = [0] * sum(len(b) for b, _ in pending)
        at = 0
        for buckets, future in pending:
            if not future.done():
                future.set_result(results[at:at + len(buckets)])
            at += len(buckets)


    async def _run(self, pending: list[tuple[list[tuple[str, Rule]], asyncio.Future]]
                   ) -> list[int]:
        if self._sha is None:
            self._sha = await self.redis.script_load(_TAKE)  # a cluster: on every primary
        calls = [(key, rule) for buckets, _ in pending for key, rule in buckets]
        if isinstance(self.redis, RedisCluster):  # its pipelines refuse scripts: one call
            # per bucket, all at once (the client groups them by node)
            return [int(r) for r in await asyncio.gather(*(
                self.redis.evalsha(self._sha, 1, key, rule.rate, rule.burst, 1)
                for key, rule in calls))]
        pipe = self.redis.pipeline(transaction=False)
        for key, rule in calls:
            pipe.evalsha(self._sha, 1, key, rule.rate, rule.burst, 1)
        return [int(r) for r in await pipe.execute()]


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("rate limit flush failed", exc_info=task.exception())
