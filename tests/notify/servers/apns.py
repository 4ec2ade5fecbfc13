"""A local APNs: HTTP/2 over TLS (a self-signed certificate, ALPN h2), checking what Apple
checks (the provider token's ES256 signature, key id, team and age, and how often it changes;
the topic, push type, priority, expiration and apns-id headers; the device token; the payload
size) and answering ``{"reason": ...}`` with Apple's status codes. Tests script dead and
foreign device tokens and one-off failures.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cluster.devcert import self_signed
from tests.notify.servers.runner import LocalServer, Reply, Request

PUSH_TYPES = {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
              "liveactivity", "pushtotalk", "widgets", "controls"}
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DEVICE = re.compile(r"^[0-9a-fA-F]{64}$")
BUNDLE_ID = re.compile(r"^[A-Za-z0-9.-]+$")
SINGLE = ("authorization", "apns-topic", "apns-push-type", "apns-priority", "apns-expiration",
          "apns-id", "apns-collapse-id")
TOKEN_MAX_AGE_S = 3600
TOKEN_MIN_UPDATE_S = 20 * 60
STATUS_OF = {"TooManyRequests": 429, "TooManyProviderTokenUpdates": 429,
             "InternalServerError": 500, "ServiceUnavailable": 503, "Shutdown": 503,
             "InvalidProviderToken": 403, "Forbidden": 403, "BadDeviceToken": 400}


def write_p8(folder: Path, key_id: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    """A signing key as Apple issues it: ``AuthKey_<key id>.p8``, PKCS8 PEM, EC P-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / f"AuthKey_{key_id}.p8"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, key


def refused(status: int, reason: str, apns_id: str) -> Reply:
    return Reply.json(status, {"reason": reason}, [("apns-id", apns_id)])


@dataclass
class Push:
    """One push APNs accepted."""

    device: str
    headers: dict[str, str]
    payload: dict[str, Any]
    claims: dict[str, Any]
    http_version: str


class FakeAPNs(LocalServer):
    """``async with FakeAPNs(tmp_path) as apns``: ``apns.url``, ``apns.ca``, ``apns.key_path``,
    ``apns.key_id``, ``apns.team_id`` and ``apns.topic`` are the ``RTHUB_APNS_*`` values."""

    def __init__(self, folder: Path, *, key_id: str = "ABC123DEFG", team_id: str = "TEAM123456",
                 topic: str = "com.example.rthub") -> None:
        super().__init__()
        self.key_id, self.team_id, self.topic = key_id, team_id, topic
        self.topics = {topic}  # what the team may push to; others: TopicDisallowed
        self.key_path, key = write_p8(folder, key_id)
        self.public_key = key.public_key()
        cert, cert_key, _ = self_signed(folder, "apns")
        self.ca = cert
        self.tls = (cert, cert_key)
        self.pushes: list[Push] = []
        self.provider_tokens: list[str] = []  # each accepted token, in the order first used
        self.dead: dict[str, int] = {}  # device -> ms since it is inactive (410 Unregistered)
        self.foreign: set[str] = set()  # devices of another app (DeviceTokenNotForTopic)
        self._failures: deque[str] = deque()
        self._current: tuple[str, int] | None = None  # the token in use and its iat

    def fail_next(self, reason: str) -> None:
        """The next push that passes every check is refused with ``reason``
        (TooManyRequests, InternalServerError, ServiceUnavailable, Shutdown...)."""
        self._failures.append(reason)

    def kill(self, device: str) -> None:
        """``device`` answers 410 Unregistered from now on (the app was removed)."""
        self.dead[device] = int(time.time() * 1000)

    async def handle(self, request: Request) -> Reply:
        apns_id = request.header("apns-id") or str(uuid.uuid4())
        if request.http_version != "2":  # APNs speaks HTTP/2 only
            return Reply.json(505, {"reason": "HTTP/2 required"})
        if request.method != "POST":
            return refused(405, "MethodNotAllowed", apns_id)
        matched = re.fullmatch(r"/3/device/([^/]*)", request.path)
        if matched is None:
            return refused(404, "BadPath", apns_id)
        names = [name for name, _ in request.headers]
        if any(names.count(name) > 1 for name in SINGLE):
            return refused(400, "DuplicateHeaders", apns_id)
        claims, problem = self._authorize(request.header("authorization"))
        if claims is None:
            return refused(429 if problem == "TooManyProviderTokenUpdates" else 403, problem,
                           apns_id)
        problem = self._check_headers(request, apns_id) or self._check_body(request.body)
        if problem:
            return refused(413 if problem == "PayloadTooLarge" else 400, problem, apns_id)
        device = matched[1]
        if not device:
            return refused(400, "MissingDeviceToken", apns_id)
        if not DEVICE.match(device):
            return refused(400, "BadDeviceToken", apns_id)
        if device in self.foreign:
            return refused(400, "DeviceTokenNotForTopic", apns_id)
        if device in self.dead:
            return Reply.json(410, {"reason": "Unregistered", "timestamp": self.dead[device]},
                              [("apns-id", apns_id)])
        if self._failures:
            reason = self._failures.popleft()
            return refused(STATUS_OF.get(reason, 500), reason, apns_id)
        headers = {name: value for name, value in request.headers if name.startswith("apns-")}
        headers["authorization"] = request.header("authorization") or ""
        self.pushes.append(Push(device, headers, json.loads(request.body), claims,
                                request.http_version))
        return Reply(200, b"", [("apns-id", apns_id)])

    def _authorize(self, authorization: str | None) -> tuple[dict[str, Any] | None, str]:
        if not authorization:
            return None, "MissingProviderToken"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, "InvalidProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"],
                                options={"require": ["iss", "iat"], "verify_iat": False})
        except jwt.PyJWTError:
            return None, "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id \
                or not isinstance(claims["iat"], int) or claims["iat"] > time.time() + 60:
            return None, "InvalidProviderToken"
        if time.time() - claims["iat"] > TOKEN_MAX_AGE_S:
            return None, "ExpiredProviderToken"
        if self._current is None or self._current[0] != token:
            if self._current is not None and claims["iat"] - self._current[1] < TOKEN_MIN_UPDATE_S:
                return None, "TooManyProviderTokenUpdates"
            self._current = (token, claims["iat"])
            self.provider_tokens.append(token)
        return claims, ""

    def _check_headers(self, request: Request, apns_id: str) -> str | None:
        topic = request.header("apns-topic")
        if topic is None:
            return "MissingTopic"  # always required with token authentication
        if not BUNDLE_ID.match(topic):
            return "BadTopic"
        if topic not in self.topics:
            return "TopicDisallowed"
        if request.header("apns-push-type") not in PUSH_TYPES:
            # Apple requires it for watchOS only; here always, as the adapter must send it.
            return "InvalidPushType"
        if request.header("apns-priority") not in (None, "10", "5", "1"):
            return "BadPriority"
        if not (request.header("apns-expiration") or "0").isdigit():
            return "BadExpirationDate"
        if request.header("apns-id") is not None and not UUID.match(apns_id):
            return "BadMessageId"
        if len((request.header("apns-collapse-id") or "").encode()) > 64:
            return "BadCollapseId"
        return None

    def _check_body(self, body: bytes) -> str | None:
        if not body:
            return "PayloadEmpty"
        if len(body) > 4096:
            return "PayloadTooLarge"
        try:
            payload = json.loads(body)
        except ValueError:
            return "BadPayload"  # not in Apple's table; a test reading it must fail loudly
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return "BadPayload"
        return None
