"""The APNs adapter against a local APNs over HTTP/2 and TLS that checks what Apple checks:
the provider token (signed, reused, renewed at 40 minutes, re-signed once when Apple calls it
expired), the headers and payload of a push, and how each of Apple's reasons is classified."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
import pytest

from notify.providers.apns import APNs, load_key
from notify.providers.base import Note, ProviderError, Target
from rthub import config
from rthub.errors import ConfigError
from tests.notify.servers.apns import FakeAPNs, write_p8
from tests.notify.servers.fcm import write_service_account

DEVICE = Target("apns", "a1" * 32)


def note(priority: int = 1, body: str = "Join now", **data: object) -> Note:
    return Note(id="n-1", tenant="t", user_id="ana", title="Party starts", body=body,
                priority=priority, category="party", data=data)


def env(apns: FakeAPNs, **changes: str) -> dict[str, str]:
    return {"RTHUB_APNS_KEY": str(apns.key_path), "RTHUB_APNS_KEY_ID": apns.key_id,
            "RTHUB_APNS_TEAM_ID": apns.team_id, "RTHUB_APNS_TOPIC": apns.topic,
            "RTHUB_APNS_URL": apns.url, "RTHUB_APNS_CA": apns.ca, **changes}


class Clock:
    """Wall time, or the times the test queues first (one per reading)."""

    def __init__(self, *queued: float) -> None:
        self.queued = list(queued)

    def __call__(self) -> float:
        return self.queued.pop(0) if self.queued else time.time()


@pytest.fixture
async def apns(tmp_path):
    async with FakeAPNs(tmp_path) as server:
        yield server


@pytest.fixture
async def provider(apns):
    provider = APNs.from_settings(config.load(env(apns)))
    assert provider is not None
    yield provider
    await provider.aclose()


def direct(apns: FakeAPNs, clock: Clock) -> APNs:
    return APNs(load_key(apns.key_path), apns.key_id, apns.team_id, apns.topic, apns.url,
                ca=apns.ca, clock=clock)


async def refusal(provider: APNs, target: Target = DEVICE, sent: Note | None = None
                  ) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.send(target, sent or note())
    return caught.value


async def test_a_push_goes_over_http2_with_a_signed_provider_token(apns, provider):
    apns_id = await provider.send(DEVICE, note(2, song={"id": 7}))

    [push] = apns.pushes
    assert push.http_version == "2"
    assert push.device == DEVICE.address
    assert apns_id == push.headers["apns-id"] == str(uuid.UUID(apns_id))
    assert push.headers["apns-topic"] == apns.topic
    assert push.headers["apns-push-type"] == "alert"
    assert push.headers["apns-priority"] == "10"
    assert abs(int(push.headers["apns-expiration"]) - (time.time() + 86_400)) < 60
    assert push.headers["authorization"].startswith("bearer ")
    assert push.claims["iss"] == apns.team_id
    assert abs(push.claims["iat"] - time.time()) < 60
    assert push.payload == {
        "aps": {"alert": {"title": "Party starts", "body": "Join now"}, "sound": "default",
                "thread-id": "party"},
        "id": "n-1", "data": {"song": {"id": 7}}}


async def test_a_normal_push_is_priority_5_and_silent(apns, provider):
    await provider.send(DEVICE, note(1))

    [push] = apns.pushes
    assert push.headers["apns-priority"] == "5"
    assert "sound" not in push.payload["aps"]


async def test_the_provider_token_is_reused_across_pushes(apns, provider):
    for _ in range(3):
        await provider.send(DEVICE, note())

    assert len(apns.provider_tokens) == 1  # another one within 20 min: TooManyProviderTokenUpdates
    assert [status for _, status in apns.answers] == [200, 200, 200]


async def test_the_provider_token_is_renewed_after_40_minutes_not_before(apns):
    start = time.time() - 41 * 60
    # readings: first push (signs at `start`), second at 39 min (reuses), third now (renews)
    provider = direct(apns, Clock(start, start + 39 * 60))
    try:
        for _ in range(3):
            await provider.send(DEVICE, note())
    finally:
        await provider.aclose()

    assert len(apns.provider_tokens) == 2
    first, second, third = (push.claims["iat"] for push in apns.pushes)
    assert first == second == int(start)
    assert third >= int(time.time()) - 5


async def test_an_expired_provider_token_is_signed_again_once_and_the_push_retried(apns):
    provider = direct(apns, Clock(time.time() - 3700))  # a token over an hour old
    try:
        await provider.send(DEVICE, note())
    finally:
        await provider.aclose()

    assert [status for _, status in apns.answers] == [403, 200]
    assert len(apns.pushes) == 1
    assert abs(apns.pushes[0].claims["iat"] - time.time()) < 60


async def test_an_unregistered_device_is_dead(apns, provider):
    apns.kill(DEVICE.address)

    error = await refusal(provider)

    assert (error.code, error.dead_target, error.retryable) == ("Unregistered", True, False)
    assert str(apns.dead[DEVICE.address]) in str(error)


async def test_a_malformed_device_token_is_dead(apns, provider):
    error = await refusal(provider, Target("apns", "not-a-device-token"))

    assert (error.code, error.dead_target) == ("BadDeviceToken", True)


async def test_a_device_of_another_app_is_dead(apns, provider):
    apns.foreign.add(DEVICE.address)

    error = await refusal(provider)

    assert (error.code, error.dead_target) == ("DeviceTokenNotForTopic", True)


@pytest.mark.parametrize("reason", ["TooManyRequests", "InternalServerError",
                                    "ServiceUnavailable", "Shutdown"])
async def test_overload_and_outages_are_retryable(apns, provider, reason):
    apns.fail_next(reason)

    error = await refusal(provider)

    assert (error.code, error.retryable, error.dead_target) == (reason, True, False)


async def test_a_token_signed_by_an_unknown_key_is_a_permanent_failure(apns, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    impostor, _ = write_p8(other, apns.key_id)  # same key id and team, another key
    provider = APNs.from_settings(config.load(env(apns, RTHUB_APNS_KEY=str(impostor))))
    assert provider is not None
    try:
        error = await refusal(provider)
    finally:
        await provider.aclose()

    assert (error.code, error.retryable, error.dead_target) == (
        "InvalidProviderToken", False, False)


async def test_a_topic_the_team_does_not_own_is_a_permanent_failure(apns):
    provider = APNs.from_settings(config.load(env(apns, RTHUB_APNS_TOPIC="com.other.app")))
    assert provider is not None
    try:
        error = await refusal(provider)
    finally:
        await provider.aclose()

    assert (error.code, error.retryable, error.dead_target) == ("TopicDisallowed", False, False)


async def test_a_payload_over_4096_bytes_is_refused_before_sending(apns, provider):
    error = await refusal(provider, sent=note(body="é" * 2100))

    assert (error.code, error.retryable, error.dead_target) == ("PayloadTooLarge", False, False)
    assert apns.answers == []


async def test_the_local_apns_refuses_http1_and_large_payloads(apns):
    url = f"{apns.url}/3/device/{DEVICE.address}"
    token = jwt.encode({"iss": apns.team_id, "iat": int(time.time())},
                       load_key(apns.key_path), algorithm="ES256", headers={"kid": apns.key_id})
    headers = {"authorization": f"bearer {token}", "apns-topic": apns.topic,
               "apns-push-type": "alert"}
    async with httpx.AsyncClient(verify=False) as http1:
        answer = await http1.post(url, content=b'{"aps":{}}', headers=headers)
    assert answer.status_code == 505
    async with httpx.AsyncClient(http1=False, http2=True, verify=False) as http2:
        answer = await http2.post(url, content=b"x" * 4097, headers=headers)
        assert (answer.status_code, answer.json()) == (413, {"reason": "PayloadTooLarge"})
        answer = await http2.post(url, content=b'{"aps":{}}', headers=headers)
        assert answer.status_code == 200


async def test_a_stopped_server_is_a_retryable_failure(apns, provider):
    # Stopped before the adapter connects: a TLS server waits up to 30 s for the close_notify
    # of a client holding a connection (asyncio's ssl_shutdown_timeout), so no pooled
    # connection here; test_fcm covers a server going away under a pooled connection.
    await apns.stop()

    error = await refusal(provider)

    assert error.retryable
    assert not error.dead_target


def test_no_key_no_provider():
    assert APNs.from_settings(config.load({})) is None


async def test_a_key_that_is_no_p8_key_stops_start_up(apns, tmp_path):
    service_account, _ = write_service_account(tmp_path, "https://x")  # an RSA key inside JSON
    rsa_pem = tmp_path / "rsa.p8"
    rsa_pem.write_text(json.loads(service_account.read_text())["private_key"])
    for bad in (service_account, rsa_pem):
        with pytest.raises(ConfigError, match="RTHUB_APNS_KEY"):
            APNs.from_settings(config.load(env(apns, RTHUB_APNS_KEY=str(bad))))
