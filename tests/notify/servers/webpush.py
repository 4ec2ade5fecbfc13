"""A Web Push service (RFC 8030) on 127.0.0.1 (a ``runner.HypercornServer``): subscriptions
made here as a browser would hold them, and a push endpoint that checks what a real push
service checks before it accepts a message, then decrypts it with the subscription's private
key.

Checks, in order: the subscription exists (404 unknown, 410 unsubscribed); scripted one-off
failures; VAPID (RFC 8292: ``Authorization: vapid t=<JWT>, k=<key>``, absent or malformed 401,
a bad signature, ``aud`` other than this origin, ``exp`` past or over 24 h ahead, no ``sub``,
or a ``k`` other than the key the subscription is restricted to 403); ``Content-Encoding:
aes128gcm`` (415); ``TTL`` present and ``Urgency``/``Topic`` well formed (400); the body
within ``max_body`` (413); the body decrypts (RFC 8291, 400 otherwise). A message that passes
is kept in ``received`` and answered 201 with a ``Location``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.notify.servers.runner import HypercornServer, Reply, Request

URGENCIES = {"very-low", "low", "normal", "high"}
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """A message the service accepted, decrypted."""

    subscription: str
    plaintext: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    claims: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.plaintext)


@dataclass
class _Subscription:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: bytes | None  # the applicationServerKey it was made with (RFC 8292 4.2)
    gone: bool = False


@dataclass
class _Failure:
    status: int
    retry_after: str | None = None


class PushService(HypercornServer):
    """``async with PushService() as service:``; ``service.subscribe()`` gives what a
    browser's ``PushSubscription.toJSON()`` gives."""

    graceful_timeout = 1.0

    def __init__(self, max_body: int = 4096) -> None:
        super().__init__()
        self.max_body = max_body
        self.received: list[Push] = []
        self.answers: list[int] = []  # every status sent, in order
        self._subscriptions: dict[str, _Subscription] = {}
        self._failures: list[_Failure] = []

    @property
    def origin(self) -> str:
        """http://127.0.0.1:<port> once started, "" before."""
        return self.url if self.port else ""

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new subscription: a P-256 key pair and a 16-byte auth secret of its own."""
        sub_id = uuid.uuid4().hex
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        restricted = unb64(application_server_key) if application_server_key else None
        self._subscriptions[sub_id] = _Subscription(key, auth, restricted)
        point = key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.origin}/push/{sub_id}",
                "keys": {"p256dh": b64(point), "auth": b64(auth)}}

    def unsubscribe(self, endpoint: str) -> None:
        """The user revoked it: pushes to it are answered 410 from now on."""
        self._subscriptions[endpoint.rsplit("/", 1)[1]].gone = True

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        """The next push (to any subscription) is answered ``status``, once."""
        self._failures.append(_Failure(status, retry_after))

    async def handle(self, request: Request) -> Reply:
        status, extra, reason = self._push(request.method, request.path, dict(request.headers),
                                           request.body)
        payload = json.dumps({"reason": reason}).encode() if reason else b""
        return Reply(status, payload, [("content-length", str(len(payload))), *extra.items()])

    def answered(self, request: Request, reply: Reply) -> None:
        self.answers.append(reply.status)

    def _push(self, method: str, path: str, headers: dict[str, str],
              body: bytes) -> tuple[int, dict[str, str], str]:
        """The answer to one request: status, headers, reason."""
        if not path.startswith("/push/"):
            return 404, {}, "no such resource"
        if method != "POST":
            return 405, {}, "push with POST"
        sub = self._subscriptions.get(path.removeprefix("/push/"))
        if sub is None:
            return 404, {}, "no such subscription"
        if sub.gone:
            return 410, {}, "subscription expired or unsubscribed"
        if self._failures:
            failure = self._failures.pop(0)
            extra = {"retry-after": failure.retry_after} if failure.retry_after else {}
            return failure.status, extra, "scripted failure"
        status, claims = self._vapid(headers.get("authorization", ""), sub)
        if status:
            return status, {}, str(claims)
        if headers.get("content-encoding", "").lower() != "aes128gcm":
            return 415, {}, "Content-Encoding must be aes128gcm"
        ttl = headers.get("ttl", "")
        if not ttl.isdigit():
            return 400, {}, "TTL header missing or not a number"
        urgency, topic = headers.get("urgency"), headers.get("topic")
        if urgency is not None and urgency not in URGENCIES:
            return 400, {}, f"bad Urgency {urgency!r}"
        if topic is not None and not TOPIC.fullmatch(topic):
            return 400, {}, f"bad Topic {topic!r}"
        if len(body) > self.max_body:
            return 413, {}, f"payload over {self.max_body} bytes"
        try:
            plaintext = http_ece.decrypt(body, private_key=sub.key, auth_secret=sub.auth,
                                         version="aes128gcm")
        except Exception as err:  # http_ece raises several kinds for a bad record
            return 400, {}, f"cannot decrypt: {err!r}"
        self.received.append(Push(path.removeprefix("/push/"), plaintext, int(ttl), urgency,
                                  topic, claims))
        return 201, {"location": f"{self.origin}/message/{uuid.uuid4().hex}"}, ""

    def _vapid(self, header: str, sub: _Subscription) -> tuple[int, Any]:
        """RFC 8292: 0 and the claims, or the status and why."""
        scheme, _, rest = header.partition(" ")
        params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        if scheme.lower() != "vapid" or not params.get("t") or not params.get("k"):
            return 401, "no vapid authorization"
        try:
            raw_key = unb64(params["k"])
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
        except ValueError:
            return 403, "k is not a P-256 point"
        if sub.server_key is not None and raw_key != sub.server_key:
            return 403, "k is not the key this subscription was made with"
        try:
            claims = jwt.decode(params["t"], public, algorithms=["ES256"], audience=self.origin,
                                options={"require": ["exp", "aud", "sub"]})
        except jwt.InvalidTokenError as err:
            return 403, f"bad token: {err}"
        if claims["exp"] > time.time() + 86_400:
            return 403, "exp more than 24 hours ahead"
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return 403, "sub is not a mailto: or https: URL"
        return 0, claims
