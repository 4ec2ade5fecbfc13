"""Rate limits every replica shares: token buckets in Redis, one atomic script per bucket.

A rule (RTHUB_RATE_LIMITS) is ``scope:what=rate/burst``: scope ``user``, ``ip`` or
``tenant``; ``what`` a message type, ``*`` (every frame), ``connect`` or ``http``. A frame
is checked against every rule that names its type or ``*``, for its user, address and
tenant. Each bucket is one Redis hash changed by one Lua script (refill by the time Redis
keeps, then spend or refuse), so replicas never disagree and never race.

Cost: a replica takes tokens from a bucket a few at a time (a *lease*: a tenth of a
second of the bucket's rate, at most a tenth of its burst, at least one) and spends them
locally for up to ``LEASE_S``, so a busy bucket costs Redis one script per lease, not per
frame, and a frame whose buckets all have leased tokens is checked without waiting. No token
is ever spent twice (a lease is taken out of the bucket); what this gives away is timing: a
leased token may be spent up to ``LEASE_S`` after the bucket gave it, and one not spent by
then is forgotten (lost to its user, never granted again). For the default per-user rule
(50/s, burst 100) a lease is 5 tokens; for ``chat.send`` (10/s) and ``connect``, one:
exact. The checks that do need Redis in one event-loop turn go in one pipeline (on a
Redis Cluster, whose pipelines refuse scripts, as concurrent calls), and a bucket found
empty is refused locally until it refills, so a flood costs Redis nothing. Redis down, or not
answering within CHECK_TIMEOUT_S (stalled): the check lets the frame through, and so do the
checks of the next FAIL_OPEN_S without asking (a limiter must not take the hub down with
it), counted in ``rthub_rate_limit_errors``. A refused frame has still spent the tokens
of the buckets that had them (the buckets are checked independently; they live on
different shards of a Redis Cluster).
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

LEASE_FRACTION_S = 0.1  # a lease is this many seconds of a bucket's rate (see lease_size)
LEASE_S = 1.0  # how long a replica may spend a lease before its tokens are forgotten
CHECK_TIMEOUT_S = 0.25  # Redis answers in well under a millisecond when it is well
FAIL_OPEN_S = 1.0

# KEYS[1] the bucket; ARGV rate/s, burst, want. Returns {granted, ms to wait for one}:
# up to ``want`` whole tokens (a replica's lease), or none and the wait.
_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now_ms end
tokens = math.min(burst, tokens + math.max(now_ms - at, 0) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
local wait = 0
if granted < 1 then
  granted = 0
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
"""


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str  # user, ip or tenant
    what: str  # a message type, *, connect or http
    rate: float
    burst: float


@dataclass(slots=True)
class _Request:
    """One bucket's lease being asked of Redis, shared by every check waiting for it."""

    rule: Rule
    future: asyncio.Future
    wanted: int = 1  # checks waiting: the request asks for at least this many tokens


class RateLimiter:
    """The rules of one replica and the Redis they share."""

    def __init__(self, redis: Any, rules: Iterable[tuple[str, str, float, float]],
                 prefix: str = "rthub:rl", check_timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.redis = redis
        self.prefix = prefix
        self.check_timeout_s = check_timeout_s  # tests of the arithmetic give it more time
        self._by_what: dict[str, list[Rule]] = {}
        for scope, what, rate, burst in rules:
            self._by_what.setdefault(what, []).append(Rule(scope, what, rate, burst))
        self._frame_rules = self._by_what.get("*", [])
        self._frame_cache: dict[str, list[Rule]] = {}  # message type -> its rules and *'s
        self._sha: str | None = None  # the script, loaded once
        self._asking: dict[str, _Request] = {}  # bucket -> its request in flight
        self._unsent: list[str] = []  # buckets whose request waits for the next flush
        self._empty_until: dict[str, float] = {}  # bucket -> monotonic time it has a token
        self._leases: dict[str, list[float]] = {}  # bucket -> [tokens left, expiry]
        self.refused: dict[str, int] = {}  # scope:what -> frames refused (metrics)
        self.errors = 0  # flushes Redis could not answer (their checks were let through)
        self._failing_until = 0.0  # after a failure, checks pass without asking for a while
        self.redis_checks = 0  # leases asked of Redis (every other check was local)

    @property
    def active(self) -> bool:
        return bool(self._by_what)

    def rules_for(self, what: str, frame: bool = True) -> list[Rule]:
        """The rules a ``what`` passes: its own, and for frames the ``*`` ones (the list is
        made once per type, not per frame)."""
        if not frame:
            return self._by_what.get(what, [])
        rules = self._frame_cache.get(what)
        if rules is None:
            rules = self._frame_cache[what] = self._by_what.get(what, []) + self._frame_rules
        return rules

    async def check(self, what: str, tenant: str, user: str | None, ip: str | None,
                    frame: bool = True) -> None:
        """Spend one token of every bucket ``what`` passes; ``RateLimited`` with the
        longest wait if any is empty. Leased tokens are spent here, without Redis."""
        rules = self.rules_for(what, frame)
        if not rules:
            return
        waiting = [(key, rule) for rule in rules
                   if (key := self._key(rule, tenant, user, ip)) is not None]
        while waiting:
            now = time.monotonic()
            worst: tuple[int, Rule] | None = None
            short: list[tuple[str, Rule]] = []
            for key, rule in waiting:
                until = self._empty_until.get(key)
                if until is not None and until > now:  # known empty: no Redis
                    wait = math.ceil((until - now) * 1000)
                    if worst is None or wait > worst[0]:
                        worst = (wait, rule)
                    continue
                lease = self._leases.get(key)
                if lease is not None and lease[0] >= 1 and lease[1] > now:
                    lease[0] -= 1
                else:
                    short.append((key, rule))
            if worst is not None:
                self._refuse(worst[1], worst[0])
            if not short:
                return
            await asyncio.gather(*(self._ask(key, rule) for key, rule in short))
            waiting = short  # spend from what the leases brought, or ask again

    def _ask(self, key: str, rule: Rule) -> asyncio.Future:
        """The lease request for ``key``: the one in flight, or a new one for the next flush
        (one pipeline per loop turn)."""
        request = self._asking.get(key)
        if request is not None:
            request.wanted += 1
            return request.future
        loop = asyncio.get_running_loop()
        request = self._asking[key] = _Request(rule, loop.create_future())
        if not self._unsent:
            loop.call_soon(self._start_flush)
        self._unsent.append(key)
        return request.future

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
        keys, self._unsent = self._unsent, []
        task = asyncio.get_running_loop().create_task(self._flush(keys))
        task.add_done_callback(_consume)

    async def _flush(self, keys: list[str]) -> None:
        """Ask Redis for the leases of ``keys`` at once; settle their waiting checks."""
        requests = [self._asking[key] for key in keys]
        wants = [min(max(lease_size(r.rule), r.wanted), int(r.rule.burst)) for r in requests]
        try:
            if time.monotonic() < self._failing_until:
                raise ConnectionError("Redis failed a check less than a second ago")
            async with asyncio.timeout(self.check_timeout_s):  # a stalled Redis: fail open too
                try:
                    answers = await self._run(keys, requests, wants)
                except NoScriptError:  # Redis restarted (or failed over): load it again
                    self._sha = None
                    answers = await self._run(keys, requests, wants)
        except Exception as err:  # whatever it is, a check must answer: fail open
            self.errors += 1
            if time.monotonic() >= self._failing_until:
                log.warning("rate limit check failed; letting requests through for %.0f s: "
                            "%r", FAIL_OPEN_S, err)
                self._failing_until = time.monotonic() + FAIL_OPEN_S
            answers = [(r.wanted, 0) for r in requests]
        now = time.monotonic()
        for key, request, (granted, wait) in zip(keys, requests, answers, strict=True):
            del self._asking[key]
            if granted >= 1:
                lease = self._leases.get(key)
                left = lease[0] if lease is not None and lease[1] > now else 0
                self._leases[key] = [left + granted, now + LEASE_S]
            else:
                self._empty_until[key] = now + wait / 1000
            request.future.set_result(None)
        for kept in (self._leases, self._empty_until):
            if len(kept) > 100_000:  # bounded: forget the oldest half
                for stale in list(kept)[:50_000]:
                    del kept[stale]

    async def _run(self, keys: list[str], requests: list[_Request], wants: list[int]
                   ) -> list[tuple[int, int]]:
        if self._sha is None:
            self._sha = await self.redis.script_load(_TAKE)  # a cluster: on every primary
        self.redis_checks += len(keys)
        calls = [(key, r.rule.rate, r.rule.burst, want)
                 for key, r, want in zip(keys, requests, wants, strict=True)]
        if isinstance(self.redis, RedisCluster):  # its pipelines refuse scripts: one call
            # per bucket, all at once (the client groups them by node)
            answers = await asyncio.gather(*(self.redis.evalsha(self._sha, 1, *call)
                                             for call in calls))
        else:
            pipe = self.redis.pipeline(transaction=False)
            for call in calls:
                pipe.evalsha(self._sha, 1, *call)
            answers = await pipe.execute()
        return [(int(granted), int(wait)) for granted, wait in answers]


def lease_size(rule: Rule) -> int:
    """Tokens a replica takes at once from a bucket: a tenth of a second of its rate, at
    most a tenth of its burst, at least one."""
    return max(1, int(min(rule.rate * LEASE_FRACTION_S, rule.burst * 0.1)))


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("rate limit flush failed", exc_info=task.exception())
