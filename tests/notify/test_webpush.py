"""The Web Push adapter against a local push service that verifies VAPID and decrypts what it
receives: the payload arrives as sent, each answer of the service is classified as the
dispatcher needs it, and a bad key or subject stops start-up."""

from __future__ import annotations

import base64
import socket
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from py_vapid import Vapid
from pywebpush import WebPusher

from notify.providers.base import Note, ProviderError, Target
from notify.providers.webpush import (
    MAX_PLAINTEXT,
    WebPush,
    application_server_key,
    public_key_b64,
)
from rthub import config
from rthub.errors import ConfigError
from tests.notify.servers.webpush import PushService

SUBJECT = "mailto:ops@example.com"


def write_key(path, key) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


def settings(**env: str) -> config.Settings:
    return config.load({"RTHUB_VAPID_SUBJECT": SUBJECT, **env})


@pytest.fixture
def vapid_pem(tmp_path) -> str:
    return write_key(tmp_path / "vapid.pem", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
async def service():
    async with PushService() as service:
        yield service


@pytest.fixture
async def push(service, vapid_pem):
    provider = WebPush.from_settings(settings(RTHUB_VAPID_KEY=vapid_pem))
    assert provider is not None
    yield provider
    await provider.aclose()


def target_of(subscription: dict) -> Target:
    return Target("webpush", subscription["endpoint"], data=subscription["keys"])


def note(priority: int = 1, body: str = "A new track in Road Trip", **data) -> Note:
    return Note(id="n1", tenant="acme", user_id="ana", title="Playlist ✓ updated", body=body,
                priority=priority, category="social", data=data)


async def refused(push: WebPush, target: Target, sent: Note | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await push.send(target, sent or note())
    return caught.value


def verdict(err: ProviderError) -> tuple[str, str | None]:
    """What the dispatcher will do with it, and the code it records."""
    assert not (err.retryable and err.dead_target)
    kind = "retry" if err.retryable else "dead" if err.dead_target else "permanent"
    return kind, err.code


async def test_service_decrypts_what_was_sent_and_verifies_the_vapid_token(service, push):
    subscription = service.subscribe(application_server_key=push.application_server_key)
    location = await push.send(target_of(subscription), note(2, track="42"))

    assert location is not None
    assert location.startswith(f"{service.origin}/message/")
    [received] = service.received
    assert received.json() == {"id": "n1", "title": "Playlist ✓ updated",
                               "body": "A new track in Road Trip", "category": "social",
                               "priority": 2, "data": {"track": "42"}}
    assert received.claims["aud"] == service.origin
    assert received.claims["sub"] == SUBJECT
    assert time.time() < received.claims["exp"] <= time.time() + 86_400
    assert received.urgency == "high"


@pytest.mark.parametrize(("priority", "urgency", "ttl"),
                         [(0, "low", 3600), (1, "normal", 86_400), (2, "high", 86_400),
                          (3, "high", 86_400)])
async def test_urgency_and_ttl_follow_the_priority(service, push, priority, urgency, ttl):
    await push.send(target_of(service.subscribe()), note(priority))
    assert (service.received[-1].urgency, service.received[-1].ttl) == (urgency, ttl)


async def test_a_topic_in_the_data_lets_a_newer_push_replace_an_older_one(service, push):
    await push.send(target_of(service.subscribe()), note(topic="playlist-7"))
    await push.send(target_of(service.subscribe()), note(topic="not a topic!"))
    assert [p.topic for p in service.received] == ["playlist-7", None]


@pytest.mark.parametrize("gone", ["unsubscribed", "unknown"])
async def test_a_subscription_gone_is_a_dead_target(service, push, gone):
    subscription = service.subscribe()
    if gone == "unsubscribed":
        service.unsubscribe(subscription["endpoint"])
    else:
        subscription["endpoint"] = subscription["endpoint"][:-4] + "beef"

    err = await refused(push, target_of(subscription))

    code = "webpush 410" if gone == "unsubscribed" else "webpush 404"
    assert verdict(err) == ("dead", code)


async def test_too_many_requests_is_retried_when_the_service_says(service, push):
    target = target_of(service.subscribe())
    service.fail_next(429, retry_after="7")

    err = await refused(push, target)

    assert verdict(err) == ("retry", "webpush 429")
    assert err.retry_after_s == 7.0
    assert await push.send(target, note())  # one-off: the next send goes through


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_service_error_is_retryable(service, push, status):
    service.fail_next(status)
    err = await refused(push, target_of(service.subscribe()))
    assert verdict(err) == ("retry", f"webpush {status}")


async def test_the_service_refusing_the_size_is_permanent(service, push):
    service.max_body = 200
    err = await refused(push, target_of(service.subscribe()), note(body="x" * 300))
    assert verdict(err) == ("permanent", "webpush 413")


async def test_a_payload_over_the_limit_is_refused_before_sending(service, push):
    err = await refused(push, target_of(service.subscribe()), note(body="é" * MAX_PLAINTEXT))
    assert verdict(err) == ("permanent", "webpush payload_too_large")
    assert service.answers == []


async def test_the_largest_payload_fits_the_services_4096_bytes(service, push):
    empty = len(b'{"id":"n1","title":"Playlist \xe2\x9c\x93 updated","body":"",'
                b'"category":"social","priority":1,"data":{}}')
    await push.send(target_of(service.subscribe()), note(body="x" * (MAX_PLAINTEXT - empty)))
    assert len(service.received[-1].plaintext) == MAX_PLAINTEXT


async def test_a_subscription_made_for_another_vapid_key_is_refused_for_good(service, push):
    other = public_key_b64(ec.generate_private_key(ec.SECP256R1()))
    err = await refused(push, target_of(service.subscribe(application_server_key=other)))
    assert verdict(err) == ("permanent", "webpush 403")
    assert service.received == []


async def test_malformed_subscription_keys_make_a_dead_target(service, push):
    subscription = service.subscribe()
    subscription["keys"]["p256dh"] = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).decode()
    err = await refused(push, target_of(subscription))
    assert verdict(err) == ("dead", "webpush bad_subscription")
    assert service.answers == []


async def test_a_service_that_cannot_be_reached_is_retryable(service, push):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subscription = service.subscribe()
    subscription["endpoint"] = subscription["endpoint"].replace(
        service.origin, f"http://127.0.0.1:{port}")
    err = await refused(push, target_of(subscription))
    assert verdict(err) == ("retry", "webpush transport")


def test_unset_vapid_key_means_no_web_push():
    assert WebPush.from_settings(settings()) is None
    assert application_server_key(settings()) is None


def test_the_application_server_key_is_the_uncompressed_public_point(vapid_pem):
    key = application_server_key(settings(RTHUB_VAPID_KEY=vapid_pem))
    assert key is not None
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert (len(raw), raw[0]) == (65, 4)  # uncompressed P-256 point
    provider = WebPush.from_settings(settings(RTHUB_VAPID_KEY=vapid_pem))
    assert provider is not None
    assert provider.application_server_key == key


@pytest.mark.parametrize("content", ["garbage", "rsa", "p384"])
def test_a_key_file_that_is_not_a_p256_key_stops_start_up(tmp_path, content):
    path = tmp_path / "vapid.pem"
    if content == "garbage":
        path.write_text("not a key\n")
    elif content == "rsa":
        write_key(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    else:
        write_key(path, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError, match="RTHUB_VAPID_KEY"):
        WebPush.from_settings(settings(RTHUB_VAPID_KEY=str(path)))


def test_a_subject_that_is_not_a_mailto_or_https_url_stops_start_up(vapid_pem):
    with pytest.raises(ConfigError, match="RTHUB_VAPID_SUBJECT"):
        WebPush.from_settings(settings(RTHUB_VAPID_KEY=vapid_pem,
                                       RTHUB_VAPID_SUBJECT="ops@example.com"))


@pytest.mark.parametrize(("claims", "status"), [
    (None, 401),
    ({"aud": "http://elsewhere.example"}, 403),
    ({"exp": int(time.time()) + 2 * 86_400}, 403),
])
async def test_the_service_checks_the_vapid_token_itself(service, vapid_pem, claims, status):
    """The local service is only worth testing against if it refuses what a real one does."""
    subscription = service.subscribe()
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm"}
    if claims is not None:
        vapid = Vapid.from_file(vapid_pem)
        headers.update(vapid.sign({"sub": SUBJECT, "aud": service.origin,
                                   "exp": int(time.time()) + 3600, **claims}))
    body = WebPusher(subscription).encode(b"{}")["body"]
    async with httpx.AsyncClient() as client:
        answer = await client.post(subscription["endpoint"], content=body, headers=headers)
    assert answer.status_code == status
    assert service.received == []
