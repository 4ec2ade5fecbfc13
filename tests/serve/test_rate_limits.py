"""Rate limits shared by every replica through Redis: the buckets themselves against real
Redis servers, then through a deployed hub (frames, socket openings, HTTP requests, a flood
closing its socket with 4429 while everyone else carries on)."""

import asyncio
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from cluster.ingress import free_port
from fanout.localcluster import LocalCluster, redis_server
from rthub.errors import RateLimited
from serve.security.limits import CHECK_TIMEOUT_S, RateLimiter
from tests.serve.client import Client, metrics_text


def limiter(redis: aioredis.Redis, *rules: tuple[str, str, float, float],
            check_timeout_s: float = 30.0) -> RateLimiter:
    """A limiter whose checks wait for Redis as long as a busy machine needs (the fail-open
    timeout has its own test), so what these tests count is the arithmetic, not the load."""
    return RateLimiter(redis, rules, prefix=f"test:rl:{uuid.uuid4().hex[:8]}",
                       check_timeout_s=check_timeout_s)


async def test_two_replicas_share_one_bucket_and_are_told_when_to_retry(redis_client):
    redis = redis_client
    # 0.01/s: a token takes 100 s to come back, so however slow the checks are, none refills
    rules = ("user", "chat.send", 0.01, 3.0)
    one = limiter(redis, rules)
    # another replica, same Redis
    two = RateLimiter(redis, [rules], prefix=one.prefix, check_timeout_s=30.0)
    started = time.monotonic()
    for replica in (one, two, one):
        await replica.check("chat.send", "t", "olga", "198.51.100.1")
    with pytest.raises(RateLimited) as refused:
        await two.check("chat.send", "t", "olga", "198.51.100.1")
    elapsed_ms = (time.monotonic() - started) * 1000
    # one token at 0.01/s, less what refilled since the first check (+2: whole ms)
    assert 100_000 - elapsed_ms - 2 <= refused.value.retry_after_ms <= 100_000
    assert "too many this message type for this user (0.01/s, burst 3)" \
        in refused.value.message
    await one.check("chat.send", "t", "bob", "198.51.100.1")  # bob has his own bucket
    await one.check("room.join", "t", "olga", "198.51.100.1")  # no rule for this type
    assert two.refused == {"user:chat.send": 1}

    # The refill under test, on a bucket quick enough to wait for: after the wait a refusal
    # names, a token is there (a slow machine only adds tokens).
    quick = limiter(redis, ("user", "chat.send", 2.0, 1.0))
    async with asyncio.timeout(30):
        while True:  # refused once two checks come within the 0.5 s a token takes
            try:
                await quick.check("chat.send", "t", "olga", "198.51.100.1")
            except RateLimited as err:
                wait_ms = err.retry_after_ms
                break
    assert 0 < wait_ms <= 500  # one token at 2/s
    await asyncio.sleep(wait_ms / 1000 + 0.05)
    await quick.check("chat.send", "t", "olga", "198.51.100.1")


async def test_concurrent_checks_spend_exactly_the_burst(redis_client):
    redis = redis_client
    rules = limiter(redis, ("tenant", "*", 0.001, 30.0), ("ip", "*", 1000.0, 1000.0))
    outcomes = await asyncio.gather(*(rules.check("party.vote", "acme", f"u{i}", f"10.0.0.{i}")
                                      for i in range(100)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 30
    assert all(isinstance(o, RateLimited) for o in outcomes if o is not None)
    # an empty bucket is refused from memory until it refills: Redis is not asked again
    await redis.aclose()
    rules.redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(RateLimited):
        await rules.check("party.vote", "acme", "late", "10.0.1.1")
    assert rules.errors == 0


async def test_redis_down_lets_requests_through_and_counts_the_errors():
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    rules = limiter(dead, ("user", "*", 1.0, 1.0))
    for _ in range(3):
        await rules.check("chat.send", "t", "olga", "10.0.0.1")
    assert rules.errors == 3
    await dead.aclose()


@pytest.mark.skipif(redis_server(minimum=6)[0] is None, reason=redis_server(minimum=6)[1])
async def test_a_stalled_redis_lets_requests_through_instead_of_holding_them(tmp_path):
    """SIGSTOP: the socket stays open and nothing answers, so no error ever comes; the
    check gives up after CHECK_TIMEOUT_S, and the next ones pass without asking."""
    with LocalCluster(tmp_path, cluster=False) as server:
        client = aioredis.from_url(server.url)
        rules = limiter(client, ("user", "*", 1.0, 1.0), check_timeout_s=CHECK_TIMEOUT_S)
        await rules.check("chat.send", "t", "olga", "10.0.0.1")  # the script is loaded
        server.pause(server.ports[0])
        try:
            async with asyncio.timeout(5):  # held until SIGCONT without the timeout
                for _ in range(3):
                    await rules.check("chat.send", "t", "olga", "10.0.0.1")
            assert rules.errors == 3
        finally:
            server.resume(server.ports[0])
            await client.aclose()


# -- through the hub ------------------------------------------------------------------------
# chat.send at 0.01/s: no token comes back during the test, however slow its round trips
LIMITS = ("user:chat.send=0.01/3,user:connect=0.05/2,user:http=0.05/2,ip:*=100000/100000,"
          "tenant:*=100000/100000")


async def test_a_flood_is_refused_then_closed_4429_and_the_room_carries_on(deploy):
    url, hub = await deploy(RTHUB_RATE_LIMITS=LIMITS, RTHUB_RATE_FLOOD="4")
    olga = await Client.connect(url, hub.token("olga"))
    bob = await Client.connect(url, hub.token("bob"))
    await olga.ask("room.create", {"room_id": "fl", "name": "flood"})
    await bob.ask("room.join", {"room": "fl"})
    started = time.monotonic()
    for i in range(3):
        await olga.ask("chat.send", {"room": "fl", "text": "hi", "client_msg_id": str(i)})
    error = await olga.error_for("chat.send", {"room": "fl", "text": "x", "client_msg_id": "3"})
    elapsed_ms = (time.monotonic() - started) * 1000
    assert error["code"] == "rate_limited"
    # one token at 0.01/s, less what refilled since the first send (+2: whole ms)
    assert 100_000 - elapsed_ms - 2 <= error["retry_after_ms"] <= 100_000
    assert error["message"].startswith("too many this message type for this user (0.01/s")
    for i in range(3):  # refusals 2, 3 and 4 within 10 s: a flood
        await olga.send("chat.send", {"room": "fl", "text": "x", "client_msg_id": f"f{i}"})
    assert await olga.closed_with() == 4429
    # everyone else carried on, and nothing olga had sent was lost
    sent = await bob.ask("chat.send", {"room": "fl", "text": "still here", "client_msg_id": "b"})
    assert sent["message_id"]
    history = await bob.ask("chat.history", {"room": "fl", "limit": 10})
    assert [m["text"] for m in history["messages"]][-4:] == ["hi", "hi", "hi", "still here"]
    assert 'rthub_rate_limited_total{rule="user:chat.send"} 4.0' in await metrics_text(
        hub.operator)
    await bob.close()


async def test_socket_openings_and_http_requests_have_their_own_buckets(deploy):
    url, hub = await deploy(RTHUB_RATE_LIMITS=LIMITS)
    token = hub.token("ines")
    first = [await Client.connect(url, token) for _ in range(2)]
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  open_timeout=20) as third:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(third.recv(), 15)
    assert closed.value.rcvd.code == 4429
    assert "too many connections for this user" in closed.value.rcvd.reason
    await first[0].ask("room.create", {"room_id": "open", "name": "o"})  # open ones carry on
    async with httpx.AsyncClient(timeout=15) as http:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(2):
            assert (await http.get(f"{hub.http}/v1/search?q=x", headers=headers)
                    ).status_code == 200
        refused = await http.get(f"{hub.http}/v1/search?q=x", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    for client in first:
        await client.close()


async def test_a_busy_bucket_is_leased_so_most_checks_never_reach_redis(redis_client):
    """1,000/s with a burst of 1,000: leases of 100 tokens, so 1,000 checks cost Redis ten
    scripts, and two replicas together never get more than the bucket holds."""
    rules = limiter(redis_client, ("user", "*", 1000.0, 1000.0))
    other = RateLimiter(redis_client, [("user", "*", 1000.0, 1000.0)], prefix=rules.prefix,
                        check_timeout_s=30.0)
    start = time.monotonic()
    for _ in range(500):
        await rules.check("time.ping", "t", "olga", None)
        await other.check("time.ping", "t", "olga", None)
    assert rules.redis_checks + other.redis_checks == 10
    outcomes = await asyncio.gather(*(replica.check("time.ping", "t", "olga", None)
                                      for replica in (rules, other) for _ in range(300)),
                                    return_exceptions=True)
    granted = 1000 + sum(o is None for o in outcomes)
    # never more than the bucket gave: its burst and what refilled at 1,000/s meanwhile
    assert granted <= 1000 + 1000 * (time.monotonic() - start) + 1
    assert all(isinstance(o, RateLimited) for o in outcomes if o is not None)
    assert rules.errors + other.errors == 0  # every check asked Redis: none failed open


async def test_concurrent_checks_share_one_lease_request_per_bucket(redis_client):
    """2,000 frames arriving together for one user must not each ask for a lease (the
    bucket would run dry on leases nobody spends and refuse frames it has room for)."""
    rules = limiter(redis_client, ("user", "*", 1e6, 1e6), ("tenant", "*", 1e6, 1e6))
    outcomes = await asyncio.gather(*(rules.check("time.ping", "t", "olga", None)
                                      for _ in range(2000)), return_exceptions=True)
    assert outcomes == [None] * 2000
    assert rules.redis_checks == 2  # one lease per bucket
