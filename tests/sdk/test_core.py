"""The SDK's sans-I/O parts (positions and repeats, the in-flight bound, backoff, tokens,
typed events) and a first connect that fails."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from client import Hub, HubError
from client.backoff import backoff_delay
from client.messages import ACKS, parse
from client.requests import Slots
from client.tokens import MIN_DELAY_S, TokenSource, refresh_delay, retry_delay, token_exp
from client.topics import Topics
from cluster.ingress import free_port


def test_repeats_are_dropped_by_seq_and_a_lost_stream_restarts_the_count():
    topics = Topics()
    topics.followed({"topic": "room:r", "epoch": "e1", "seq": 4})
    assert [topics.accept({"topic": "room:r", "seq": s}) for s in (5, 5, 4, 6)] == \
        [True, False, False, True]
    assert topics.accept({"topic": "room:r"})  # ephemeral: no seq, always new
    assert topics.since() == {"room:r": {"epoch": "e1", "seq": 6}}
    assert topics.restored({"topic": "room:r", "epoch": "e1", "seq": 9, "recovered": True})
    assert topics.since()["room:r"]["seq"] == 6  # the replay of 7..9 follows
    assert not topics.restored({"topic": "room:r", "epoch": "e2", "seq": 2,
                                "recovered": False})
    assert topics.accept({"topic": "room:r", "seq": 3})


async def test_slots_bound_the_requests_in_flight_and_serve_waiters_in_order():
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.acquire()
        order.append(n)

    waiters = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)  # let them queue (a scheduling step, not a wait for time)
    assert slots.used == 2
    assert order == []
    slots.release()
    slots.resize(3)
    await asyncio.gather(*waiters[:2])
    assert order == [0, 1]
    assert not waiters[2].done()
    waiters[2].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiters[2]
    assert slots.used == 3


def test_backoff_is_full_jitter_under_a_growing_ceiling():
    assert backoff_delay(0, 0.2, 10, rand=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_delay(3, 0.2, 10, rand=lambda: 1.0) == pytest.approx(1.6)
    assert backoff_delay(30, 0.2, 10, rand=lambda: 1.0) == 10
    assert backoff_delay(5, 0.2, 10, rand=lambda: 0.0) == 0


def test_a_tokens_exp_is_read_without_verifying_it():
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "a", "exp": 1234}).encode())
    assert token_exp(f"h.{payload.decode().rstrip('=')}.sig") == 1234
    assert token_exp("not-a-jwt") is None


def jwt_until(exp: float) -> str:
    """A JWT-shaped token expiring at ``exp`` (the SDK reads it without verifying)."""
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "a", "exp": exp}).encode())
    return f"h.{payload.decode().rstrip('=')}.sig"


def test_a_token_is_renewed_a_margin_before_exp_or_at_half_a_short_life():
    assert refresh_delay(1000 + 3600, 1000, 60) == 3540  # long-lived: the margin before exp
    assert refresh_delay(1000 + 120, 1000, 60) == 60     # exactly twice the margin
    assert refresh_delay(1000 + 4, 1000, 60) == 2        # a test token: at half its life
    assert refresh_delay(1000 + 4, 1000, 3) == 2
    assert refresh_delay(1000 + 100, 1000, 30) == 70
    assert refresh_delay(990, 1000, 60) == MIN_DELAY_S   # already expired: not a busy loop


def test_a_failed_renewal_is_retried_with_backoff_before_exp_only():
    for attempt in range(1, 8):
        delay = retry_delay(attempt, 1000 + 3600, 1000)
        assert delay is not None
        assert 0.1 <= delay <= min(30, 2 ** (attempt - 1))
    assert retry_delay(9, 1000 + 4, 1000) <= 2  # never past half the time left
    assert retry_delay(1, 1000.1, 1000) is None  # expired: the 4401 reconnect asks again
    assert retry_delay(1, 999, 1000) is None


async def test_a_providers_renewal_reaches_on_fresh_and_a_failure_is_retried():
    issued: list[str] = []
    given: list[str] = []
    failures = [RuntimeError("the hub said no")]
    delivered = asyncio.Event()

    def provider() -> str:  # 2-second tokens: renewed after ~1 s
        issued.append(jwt_until(time.time() + 2))
        return issued[-1]

    async def on_fresh(token: str) -> None:
        if failures:
            raise failures.pop()
        given.append(token)
        delivered.set()

    source = TokenSource(provider, margin_s=60, on_fresh=on_fresh)
    assert await source.fresh() == issued[0]  # the connect's token
    try:
        await asyncio.wait_for(delivered.wait(), 30)
    finally:
        source.stop()
    assert given == [issued[2]]  # the second failed on_fresh: retried with a third
    assert source.current == issued[2]
    assert TokenSource("static").renewable is False


def test_parse_names_the_fields_an_ack_lacks():
    assert parse("chat.send", {"message_id": "m", "seq": 1}, ACKS)["seq"] == 1
    with pytest.raises(ValueError, match=r"chat\.message without message_id"):
        parse("chat.message", {"room": "r", "sender": "a", "text": "t", "attachments": []})


async def test_a_first_connect_that_fails_is_not_retried():
    def provider() -> str:
        raise RuntimeError("no token today")

    for token, code in (("a-token", "unavailable"), (provider, "unauthorized")):
        hub = Hub(f"ws://127.0.0.1:{free_port()}/ws", token)  # nothing listens there
        with pytest.raises(HubError) as failed:
            await hub.connect()
        assert failed.value.code == code
        assert hub.state == "closed"
