"""The Twilio SMS adapter against a local Twilio: what it sends (auth, form fields, the body
cut to Twilio's limit) and how it reads each answer (dead number, retry with or without
Retry-After, permanent refusal, Twilio unreachable)."""

from __future__ import annotations

import pytest

from notify.providers.base import Note, ProviderError, Target
from notify.providers.twilio_sms import TwilioSMS, clip
from rthub import config
from tests.notify.servers.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

SENDER = "+15005550006"
SERVICE = "MG" + "fedcba9876543210" * 2
ANA = Target(kind="sms", address="+14155550123")


def settings(url: str, token: str = AUTH_TOKEN, sender: str = SENDER) -> config.Settings:
    return config.load({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": token,
                        "TWILIO_FROM": sender, "RTHUB_TWILIO_URL": url})


def note(title: str = "New follower", body: str = "Bo follows you") -> Note:
    return Note(id="n1", tenant="t", user_id="ana", title=title, body=body)


@pytest.fixture
async def twilio():
    async with TwilioServer() as server:
        yield server


@pytest.fixture
async def sms(twilio):
    provider = TwilioSMS.from_settings(settings(twilio.url))
    yield provider
    await provider.aclose()


async def refusal(provider: TwilioSMS, target: Target = ANA) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.send(target, note())
    return caught.value


async def test_an_sms_reaches_twilio_as_the_account_with_title_and_body(twilio, sms):
    sid = await sms.send(ANA, note())

    [message] = twilio.messages  # the server answers 20003 to anything but sid:token
    assert sid == message["sid"]
    assert sid.startswith("SM")
    assert message["account_sid"] == ACCOUNT_SID
    assert message["to"] == ANA.address
    assert message["from"] == SENDER
    assert message["messaging_service_sid"] is None
    assert message["body"] == "New follower\nBo follows you"


async def test_a_messaging_service_sid_is_sent_as_the_service_not_as_from(twilio):
    provider = TwilioSMS.from_settings(settings(twilio.url, sender=SERVICE))
    try:
        await provider.send(ANA, note())
    finally:
        await provider.aclose()

    [message] = twilio.messages
    assert message["messaging_service_sid"] == SERVICE
    assert message["from"] is None
    assert message["status"] == "accepted"


async def test_a_long_body_is_cut_to_1600_utf16_units_and_twilio_takes_it(twilio, sms):
    await sms.send(ANA, note(body="\N{GUITAR}" * 1000))  # 2000 units: over Twilio's limit

    [message] = twilio.messages
    assert message["body"].endswith("\u2026")
    assert len(message["body"].encode("utf-16-le")) // 2 <= 1600


def test_clip_leaves_short_text_alone_and_never_exceeds_the_limit():
    assert clip("hello", 5) == "hello"
    assert clip("hello!", 5) == "hell\u2026"
    assert clip("a\N{GUITAR}\N{GUITAR}", 4) == "a\N{GUITAR}\u2026"
    assert clip("a\N{GUITAR}\N{GUITAR}", 3) == "a\u2026"  # never half a surrogate pair


@pytest.mark.parametrize(("address", "script", "code"), [
    ("4155550123", None, "twilio 21211"),
    ("+14155550199", "unsubscribed", "twilio 21610"),
    ("+14155550188", "landlines", "twilio 21614"),
])
async def test_a_number_twilio_will_never_reach_is_a_dead_target(twilio, sms, address, script,
                                                                  code):
    if script:
        getattr(twilio, script).add(address)

    err = await refusal(sms, Target(kind="sms", address=address))

    assert (err.dead_target, err.retryable, err.code) == (True, False, code)
    assert twilio.messages == []


async def test_too_many_requests_is_retried_when_twilio_says(twilio, sms):
    twilio.fail_next(429, retry_after="7")

    err = await refusal(sms)

    assert (err.retryable, err.dead_target, err.code) == (True, False, "twilio 20429")
    assert err.retry_after_s == 7


@pytest.mark.parametrize(("status", "code"), [(500, "twilio 20500"), (503, "twilio 20503"),
                                              (429, "twilio 20429")])
async def test_a_twilio_outage_is_retryable_and_the_next_send_goes_through(twilio, sms, status,
                                                                           code):
    twilio.fail_next(status)

    err = await refusal(sms)
    assert (err.retryable, err.code, err.retry_after_s) == (True, code, None)

    assert (await sms.send(ANA, note())).startswith("SM")


async def test_a_wrong_auth_token_is_permanent(twilio):
    provider = TwilioSMS.from_settings(settings(twilio.url, token="not-the-token"))
    try:
        err = await refusal(provider)
    finally:
        await provider.aclose()

    assert (err.retryable, err.dead_target, err.code) == (False, False, "twilio 20003")


async def test_twilio_unreachable_is_retryable():
    async with TwilioServer() as server:
        url = server.url  # closed on leaving: nothing listens there any more
    provider = TwilioSMS.from_settings(settings(url))
    try:
        err = await refusal(provider)
    finally:
        await provider.aclose()

    assert (err.retryable, err.dead_target, err.code) == (True, False, "twilio transport")


def test_no_account_sid_means_no_sms_provider():
    assert TwilioSMS.from_settings(config.load({})) is None
