"""The FCM adapter against a local FCM that checks what Google checks: the OAuth2 exchange,
the access token cached and renewed, the message FCM receives, and how each of FCM's error
answers is classified for the dispatcher."""

from __future__ import annotations

import json
import time

import pytest

from notify.providers.base import Note, ProviderError, Target, retry_after
from notify.providers.fcm import FCM, SCOPE, load_account
from rthub import config
from rthub.errors import ConfigError
from tests.notify.servers.fcm import FakeFCM, Reply, write_service_account

DEVICE = Target("fcm", "fcm-token-ana-1")


def note(priority: int = 1, **data: object) -> Note:
    return Note(id="n-1", tenant="t", user_id="ana", title="Party starts", body="Join now",
                priority=priority, category="party", data=data)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fcm(tmp_path):
    async with FakeFCM(tmp_path) as server:
        yield server


@pytest.fixture
async def provider(fcm):
    settings = config.load({"RTHUB_FCM_CREDENTIALS": str(fcm.credentials),
                            "RTHUB_FCM_URL": fcm.url})
    provider = FCM.from_settings(settings)
    assert provider is not None
    yield provider
    await provider.aclose()


async def refusal(provider: FCM, target: Target = DEVICE) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.send(target, note())
    return caught.value


async def test_a_send_reaches_fcm_as_an_http_v1_message_with_string_data(fcm, provider):
    name = await provider.send(DEVICE, note(2, count=3, who="bob", song={"id": 7, "tags": ["x"]},
                                            flag=True))

    assert name == fcm.messages[0].name
    assert name.startswith("projects/rthub-test/messages/")
    sent = fcm.messages[0].message
    assert sent["token"] == DEVICE.address
    assert sent["notification"] == {"title": "Party starts", "body": "Join now"}
    assert sent["data"] == {"count": "3", "who": "bob", "song": '{"id":7,"tags":["x"]}',
                            "flag": "true", "id": "n-1", "category": "party"}
    assert sent["android"] == {"priority": "HIGH"}
    assert sent["apns"] == {"headers": {"apns-priority": "10"}}
    [grant] = fcm.grants
    assert grant["iss"] == f"firebase-adminsdk-test@{fcm.project}.iam.gserviceaccount.com"
    assert grant["scope"] == SCOPE
    assert grant["aud"] == fcm.token_uri
    assert grant["exp"] - grant["iat"] == 3600
    assert abs(grant["iat"] - time.time()) < 60
    assert fcm.messages[0].authorization == f"Bearer {next(iter(fcm.issued))}"


async def test_a_normal_priority_note_is_sent_normal_on_android_and_5_on_apns(fcm, provider):
    await provider.send(DEVICE, note(1))
    await provider.send(DEVICE, note(0))

    for received in fcm.messages:
        assert received.message["android"]["priority"] == "NORMAL"
        assert received.message["apns"]["headers"]["apns-priority"] == "5"


async def test_the_access_token_is_fetched_once_for_many_sends(fcm, provider):
    for _ in range(3):
        await provider.send(DEVICE, note())

    assert len(fcm.grants) == 1
    assert len({received.authorization for received in fcm.messages}) == 1


async def test_a_refused_access_token_is_renewed_once_and_the_send_retried(fcm, provider):
    await provider.send(DEVICE, note())
    fcm.revoke_tokens()

    await provider.send(DEVICE, note())

    assert len(fcm.grants) == 2
    assert [status for path, status in fcm.answers if path != "/token"] == [200, 401, 200]
    assert fcm.messages[0].authorization != fcm.messages[1].authorization


async def test_an_access_token_refused_twice_is_a_permanent_failure(fcm, provider):
    fcm.fail_next("UNAUTHENTICATED")
    fcm.fail_next("UNAUTHENTICATED")

    error = await refusal(provider)

    assert (error.code, error.retryable, error.dead_target) == ("UNAUTHENTICATED", False, False)
    assert len(fcm.grants) == 2  # one renewal, not a loop


async def test_the_access_token_is_renewed_before_it_expires(fcm):
    clock = Clock()
    provider = FCM(load_account(fcm.credentials), fcm.url, clock=clock)
    try:
        await provider.send(DEVICE, note())
        clock.now += fcm.expires_in - 301  # still more than the 300 s margin left
        await provider.send(DEVICE, note())
        assert len(fcm.grants) == 1
        clock.now += 2
        await provider.send(DEVICE, note())
        assert len(fcm.grants) == 2
    finally:
        await provider.aclose()


async def test_third_party_auth_error_is_permanent_and_keeps_the_access_token(fcm, provider):
    fcm.fail_next("THIRD_PARTY_AUTH_ERROR")

    error = await refusal(provider)

    assert (error.code, error.retryable, error.dead_target) == (
        "THIRD_PARTY_AUTH_ERROR", False, False)
    assert len(fcm.grants) == 1


async def test_an_unregistered_token_is_dead(fcm, provider):
    fcm.dead.add(DEVICE.address)

    error = await refusal(provider)

    assert (error.code, error.dead_target, error.retryable) == ("UNREGISTERED", True, False)


async def test_a_token_fcm_calls_invalid_is_dead(fcm, provider):
    fcm.malformed.add(DEVICE.address)

    error = await refusal(provider)

    assert (error.code, error.dead_target, error.retryable) == ("INVALID_ARGUMENT", True, False)


async def test_another_invalid_argument_is_permanent_and_keeps_the_token(fcm, provider):
    with pytest.raises(ProviderError) as caught:  # FCM reserves the data key "from"
        await provider.send(DEVICE, note(**{"from": "bob"}))

    error = caught.value
    assert (error.code, error.dead_target, error.retryable) == ("INVALID_ARGUMENT", False, False)
    assert "from" in str(error)


@pytest.mark.parametrize("code", ["SENDER_ID_MISMATCH", "PERMISSION_DENIED", "INVALID_ARGUMENT"])
async def test_configuration_errors_are_permanent(fcm, provider, code):
    fcm.fail_next(code)

    error = await refusal(provider)

    assert (error.code, error.dead_target, error.retryable) == (code, False, False)


@pytest.mark.parametrize(("code", "header", "wait"), [
    ("QUOTA_EXCEEDED", "17", 17.0),
    ("UNAVAILABLE", "5", 5.0),
    ("UNAVAILABLE", None, None),
    ("INTERNAL", None, None),
])
async def test_overload_and_outages_are_retryable_after_what_fcm_asks(fcm, provider, code,
                                                                      header, wait):
    fcm.fail_next(code, retry_after=header)

    error = await refusal(provider)

    assert (error.code, error.retryable, error.dead_target) == (code, True, False)
    assert error.retry_after_s == wait


async def test_a_proxy_error_without_an_fcm_body_is_retryable(fcm, provider):
    fcm.answer_next(Reply(502, b"<html>Bad Gateway</html>", [("content-type", "text/html")]))

    error = await refusal(provider)

    assert (error.code, error.retryable) == ("HTTP_502", True)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("120") == 120.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= retry_after(later) <= 61
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # past: now


async def test_a_stopped_server_is_a_retryable_failure(fcm, provider):
    await provider.send(DEVICE, note())
    await fcm.stop()

    error = await refusal(provider)

    assert error.retryable
    assert not error.dead_target


async def test_a_server_that_never_answers_times_out_retryable(fcm):
    provider = FCM(load_account(fcm.credentials), fcm.url, timeout=0.2)
    fcm.hang_next()
    try:
        error = await refusal(provider)
    finally:
        await provider.aclose()

    assert error.retryable
    assert error.code.endswith("Timeout")  # ReadTimeout: FCM never answered


async def test_an_assertion_signed_with_an_unknown_key_is_refused_permanently(fcm, tmp_path):
    path, _ = write_service_account(tmp_path, fcm.token_uri, fcm.project, name="stolen.json")
    provider = FCM(load_account(path), fcm.url)
    try:
        error = await refusal(provider)
    finally:
        await provider.aclose()

    assert (error.code, error.retryable) == ("invalid_grant", False)
    assert "Invalid JWT Signature" in str(error)
    assert fcm.messages == []


def test_no_credentials_no_provider():
    assert FCM.from_settings(config.load({})) is None


@pytest.mark.parametrize("content", [
    "not json",
    json.dumps({"type": "authorized_user", "client_id": "x"}),
    json.dumps({"type": "service_account", "project_id": "p"}),
    json.dumps({"type": "service_account", "project_id": "p", "private_key": "not a key",
                "client_email": "a@p.iam.gserviceaccount.com", "token_uri": "https://x"}),
])
def test_a_key_file_that_is_no_service_account_key_stops_start_up(tmp_path, content):
    path = tmp_path / "key.json"
    path.write_text(content)

    with pytest.raises(ConfigError, match="RTHUB_FCM_CREDENTIALS"):
        FCM.from_settings(config.load({"RTHUB_FCM_CREDENTIALS": str(path)}))
