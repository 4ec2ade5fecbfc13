"""A device registration (``POST /v1/devices``) checked into a ``Target``: an FCM or APNs
token, a Web Push subscription as the browser gives it, an email address or a phone number.
A malformed one is refused here, naming the field, rather than failing at its first send."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from notify.providers.base import Target
from rthub.config import Settings
from rthub.errors import BadRequest

PER_USER = 50  # targets one user may hold; registering more replaces the oldest
_FCM = re.compile(r"^[A-Za-z0-9_:\-.]{20,4096}$")
_APNS = re.compile(r"^[0-9a-fA-F]{64,200}$")
_EMAIL = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$|"
                    r"^[^@\s<>,;\"]{1,64}@localhost$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_APP = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


# the target kinds, and the variable that turns on the provider of each
SETTING = {"fcm": "RTHUB_FCM_CREDENTIALS", "apns": "RTHUB_APNS_KEY",
           "webpush": "RTHUB_VAPID_KEY", "email": "RTHUB_SMTP_URL", "sms": "TWILIO_ACCOUNT_SID"}


def configured(settings: Settings) -> set[str]:
    """The target kinds this hub has a provider for."""
    found = {"fcm": settings.fcm_credentials, "apns": settings.apns_key,
             "webpush": settings.vapid_key, "email": settings.smtp_url,
             "sms": settings.twilio_sid}
    return {kind for kind, value in found.items() if value is not None}


def from_request(payload: Any) -> tuple[str | None, Target]:
    """``(user_id or None, target)`` from a registration body: ``{kind, token | subscription |
    address, app?, user_id?}``."""
    if not isinstance(payload, dict):
        raise BadRequest("a device is a JSON object")
    unknown = set(payload) - {"kind", "token", "subscription", "address", "app", "user_id"}
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    kind, app, user = payload.get("kind"), payload.get("app", "default"), payload.get("user_id")
    if kind not in SETTING:
        raise BadRequest(f"'kind' must be one of {', '.join(SETTING)}")
    if not isinstance(app, str) or not _APP.match(app):
        raise BadRequest("'app' must be 1 to 100 letters, digits, '.', '_' or '-'")
    if user is not None and (not isinstance(user, str) or not 1 <= len(user) <= 200):
        raise BadRequest("'user_id' must be a user id of 1 to 200 characters")
    if kind == "webpush":
        return user, _subscription(payload.get("subscription"), app)
    field = "token" if kind in ("fcm", "apns") else "address"
    value = payload.get(field)
    pattern = {"fcm": _FCM, "apns": _APNS, "email": _EMAIL, "sms": _PHONE}[kind]
    if not isinstance(value, str) or not pattern.match(value):
        expected = {"fcm": "an FCM registration token",
                    "apns": "an APNs device token (64 or more hex digits)",
                    "email": "an email address", "sms": "a phone number in E.164 (+33612345678)"}
        raise BadRequest(f"'{field}' must be {expected[kind]}")
    return user, Target(kind, value.lower() if kind == "apns" else value, app)


def _subscription(sub: Any, app: str) -> Target:
    """A ``PushSubscription.toJSON()``: an https endpoint (http only on loopback, for local
    push services), and the ``p256dh`` key (a P-256 point, 65 bytes) and ``auth`` secret
    (16 bytes) the payload is encrypted for (RFC 8291)."""
    if not isinstance(sub, dict) or not isinstance(sub.get("keys"), dict):
        raise BadRequest("'subscription' must be {endpoint, keys: {p256dh, auth}}")
    endpoint, keys = sub.get("endpoint"), sub["keys"]
    if not isinstance(endpoint, str) or len(endpoint) > 2000 or not _push_url(endpoint):
        raise BadRequest("'subscription.endpoint' must be an https URL")
    found = {name: _b64(keys.get(name)) for name in ("p256dh", "auth")}
    if found["p256dh"] is None or len(found["p256dh"]) != 65 or found["p256dh"][0] != 4:
        raise BadRequest("'subscription.keys.p256dh' must be a P-256 public key (base64url)")
    if found["auth"] is None or len(found["auth"]) != 16:
        raise BadRequest("'subscription.keys.auth' must be a 16-byte secret (base64url)")
    return Target("webpush", endpoint, app, {"p256dh": keys["p256dh"], "auth": keys["auth"]})


def _push_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return parts.hostname == "localhost"


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) > 200:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
