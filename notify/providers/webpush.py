"""Web Push (RFC 8030) to a browser's push subscription: the payload encrypted for it
(RFC 8291, ``aes128gcm``) and the request signed with our VAPID key (RFC 8292).

The transport is pywebpush's own async path (2.x), ``webpush_async``: the library encrypts,
signs and posts over one ``aiohttp`` session this adapter keeps (aiohttp is a hub dependency
already). That beats ``asyncio.to_thread`` around the sync ``webpush`` (a thread and a
``requests`` connection per send) and re-assembling ``WebPusher.encode`` + py_vapid + httpx
(the same steps, in our code instead of the maintained library's). Two sharp edges of
that call are handled here: it writes ``aud`` and ``exp`` into the claims dict it is given
(so each send passes a fresh one: an endpoint's origin must not leak into the next send), and
it answers every status above 202 with ``WebPushException``, which we classify.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException, webpush_async

from notify.providers.base import Note, Provider, ProviderError, Target, retry_after
from rthub.config import Settings
from rthub.errors import ConfigError

log = logging.getLogger(__name__)

# RFC 8030 7.2: a push service must accept 4096 octets of encrypted body. RFC 8291 4: the
# aes128gcm header (86), the tag (16) and the padding delimiter (1) leave 3993 for plaintext.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
# RFC 8030 5.3. NORMAL is "normal", not "low": a device may hold a "low" message until it is
# on power or Wi-Fi, which is not what an ordinary notification means.
URGENCY = {0: "low", 1: "normal", 2: "high", 3: "high"}
# RFC 8030 5.2: how long the push service keeps a message for an offline device. A LOW one is
# stale sooner; past its TTL it is dropped, not delivered late.
TTL_S = {0: 3600, 1: 86_400, 2: 86_400, 3: 86_400}
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 5.4: URL-safe base64 alphabet, 32 max
DEAD = {404, 410}  # the subscription expired or was unsubscribed: never again


def load_vapid_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key of ``RTHUB_VAPID_KEY``; ``ConfigError`` when it is not one."""
    try:
        with open(path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"RTHUB_VAPID_KEY must be a readable, unencrypted PEM private key "
                          f"(P-256): {path}: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"RTHUB_VAPID_KEY must be a P-256 (prime256v1) EC key: {path}")
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public half as a browser's ``applicationServerKey`` takes it: the uncompressed
    point, base64url without padding."""
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def application_server_key(settings: Settings) -> str | None:
    """What the hub gives web clients for ``pushManager.subscribe({applicationServerKey})``;
    None when Web Push is not configured."""
    return None if settings.vapid_key is None else public_key_b64(
        load_vapid_key(settings.vapid_key))


class WebPush(Provider):
    """Sends to ``Target(kind="webpush", address=<endpoint>, data={"p256dh", "auth"})``."""

    name = "webpush"
    channel = "push"
    kinds = ("webpush",)

    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str,
                 timeout_s: float = 10.0) -> None:
        self._vapid = Vapid(private_key=key)
        self._subject = subject
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.application_server_key = public_key_b64(key)
        try:  # a subject the library refuses would fail every send: say so at start
            self._vapid.sign({"sub": subject, "aud": "https://push.example"})
        except VapidException:
            raise ConfigError(f"RTHUB_VAPID_SUBJECT must be a mailto: or https: URL, "
                              f"got {subject!r}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebPush | None:
        if settings.vapid_key is None:
            return None
        if settings.vapid_subject.endswith("@localhost"):
            log.warning("RTHUB_VAPID_SUBJECT is %s: some push services (Apple's) refuse a "
                        "subject they cannot reach", settings.vapid_subject)
        return cls(load_vapid_key(settings.vapid_key), settings.vapid_subject)

    async def send(self, target: Target | None, note: Note) -> str | None:
        """Post one push message; the push service's message URL (``Location``) if given."""
        if target is None:
            raise ProviderError("web push needs a subscription", code="webpush no_target")
        subscription = _subscription(target)
        payload = json.dumps({"id": note.id, "title": note.title, "body": note.body,
                              "category": note.category, "priority": note.priority,
                              "data": note.data}, separators=(",", ":"), ensure_ascii=False)
        size = len(payload.encode())
        if size > MAX_PLAINTEXT:
            raise ProviderError(f"web push payload is {size} bytes, over {MAX_PLAINTEXT}",
                                code="webpush payload_too_large")
        headers: dict[str, Any] = {"Urgency": URGENCY.get(note.priority, "normal")}
        topic = note.data.get("topic")
        if isinstance(topic, str) and TOPIC.fullmatch(topic):
            headers["Topic"] = topic  # a newer message replaces an undelivered older one
        try:
            response = await webpush_async(
                subscription, data=payload, vapid_private_key=self._vapid,
                vapid_claims={"sub": self._subject}, ttl=TTL_S.get(note.priority, 86_400),
                headers=headers, timeout=self._timeout_s, aiohttp_session=self._client())
        except WebPushException as err:
            raise _refused(err) from None
        except VapidException as err:  # claims the library will not sign for this endpoint
            raise ProviderError(f"VAPID signing refused: {err}", code="webpush vapid") from None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ProviderError(f"web push did not reach {_origin(target.address)}: {err!r}",
                                retryable=True, code="webpush transport") from err
        if isinstance(response, str):  # only with curl=True, which we never pass
            return None
        return response.headers.get("Location")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        """One session (its connection pool) for every send, made on the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session


def _subscription(target: Target) -> dict[str, Any]:
    """The subscription as pywebpush takes it, checked: a malformed endpoint or key can never
    be sent to, so the subscription is dead rather than the send retried."""
    p256dh, auth = target.data.get("p256dh"), target.data.get("auth")
    try:
        parts = urlsplit(target.address)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("the endpoint is not an http(s) URL")
        point = _b64(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(_b64(auth)) != 16:
            raise ValueError("auth is not 16 bytes")
    except (ValueError, TypeError, binascii.Error) as err:
        raise ProviderError(f"web push subscription is invalid: {err}",
                            dead_target=True, code="webpush bad_subscription") from None
    return {"endpoint": target.address, "keys": {"p256dh": p256dh, "auth": auth}}


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError("p256dh or auth is missing")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _refused(err: WebPushException) -> ProviderError:
    """RFC 8030 8 and RFC 8292 4: what each answer means for the dispatcher."""
    status = err.status_code
    if status is None:  # refused before any request (the library's own checks)
        return ProviderError(f"web push refused: {err.message}", code="webpush refused")
    code = f"webpush {status}"
    # the service's reason (its body) helps an operator: "BadJwtToken", "VapidPkHashMismatch"
    message = f"web push: {' '.join(str(err.message).split())[:300]}"
    if status in DEAD:
        return ProviderError(f"{message} (subscription gone)", dead_target=True, code=code)
    if status == 429 or status >= 500:
        return ProviderError(message, retryable=True, code=code,
                             retry_after_s=retry_after(err.retry_after))
    if status in (401, 403):
        message += " (the VAPID key or claims were refused)"
    return ProviderError(message, code=code)  # 413 too large, 400 malformed, other 4xx


def _origin(endpoint: str) -> str:
    """For messages: the push service, never the subscription's secret path."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
