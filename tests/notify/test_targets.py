"""Device registrations checked before they are kept: each kind's address rules, a Web Push
subscription's keys, and the exact error for each bad one."""

from __future__ import annotations

import base64

import pytest

from notify import targets
from notify.providers.base import Target
from rthub import config
from rthub.errors import BadRequest

P256 = base64.urlsafe_b64encode(b"\x04" + bytes(64)).rstrip(b"=").decode()
AUTH = base64.urlsafe_b64encode(bytes(16)).rstrip(b"=").decode()


def test_each_kind_becomes_a_target():
    assert targets.from_request({"kind": "apns", "token": "AB" * 32, "app": "ios.beta"}) == (
        None, Target("apns", "ab" * 32, "ios.beta"))
    assert targets.from_request({"kind": "sms", "address": "+33612345678", "user_id": "ana"}
                                ) == ("ana", Target("sms", "+33612345678"))
    sub = {"endpoint": "https://push.example/abc", "keys": {"p256dh": P256, "auth": AUTH}}
    assert targets.from_request({"kind": "webpush", "subscription": sub})[1] == Target(
        "webpush", "https://push.example/abc", "default", {"p256dh": P256, "auth": AUTH})
    loopback = {**sub, "endpoint": "http://127.0.0.1:9000/push/1"}  # a local push service
    assert targets.from_request({"kind": "webpush", "subscription": loopback})[1].address == (
        "http://127.0.0.1:9000/push/1")


@pytest.mark.parametrize(("payload", "error"), [
    ([], "a device is a JSON object"),
    ({"kind": "fcm", "token": "t" * 30, "extra": 1}, "unknown field 'extra'"),
    ({"kind": "fcm", "token": "short"}, "'token' must be an FCM registration token"),
    ({"kind": "apns", "token": "zz" * 32}, "'token' must be an APNs device token"),
    ({"kind": "email", "address": "ana@@example.com"}, "'address' must be an email address"),
    ({"kind": "fcm", "token": "t" * 30, "app": "../x"}, "'app' must be 1 to 100 letters"),
    ({"kind": "webpush", "subscription": {"endpoint": "https://p.example/1",
                                          "keys": {"p256dh": AUTH, "auth": AUTH}}},
     "'subscription.keys.p256dh' must be a P-256 public key"),
    ({"kind": "webpush", "subscription": {"endpoint": "https://p.example/1",
                                          "keys": {"p256dh": P256, "auth": P256}}},
     "'subscription.keys.auth' must be a 16-byte secret"),
    ({"kind": "webpush", "subscription": {"endpoint": "http://10.0.0.1/1",
                                          "keys": {"p256dh": P256, "auth": AUTH}}},
     "'subscription.endpoint' must be an https URL"),
])
def test_a_bad_registration_names_what_is_wrong(payload, error):
    with pytest.raises(BadRequest, match=error):
        targets.from_request(payload)


def test_only_kinds_with_a_provider_are_configured():
    assert targets.configured(config.load({})) == set()
    assert targets.configured(config.load({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "x",
                                           "TWILIO_FROM": "+15005550006"})) == {"sms"}
