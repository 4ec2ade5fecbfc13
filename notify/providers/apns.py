"""Apple Push Notification service, token-based, over HTTP/2: APNs speaks nothing else. One
POST per device token to ``/3/device/<token>``, authorised by a provider token (an ES256
JWT signed with the team's .p8 key) that is reused for 40 minutes: Apple refuses a token
older than an hour (ExpiredProviderToken) and throttles one renewed more often than every
20 minutes (TooManyProviderTokenUpdates).

Every push expires a day after it is sent (``apns-expiration``): APNs keeps it that long for
an offline device and then drops it, stale. Not 0 for any priority: 0 means "now or never",
which would lose exactly the CRITICAL notifications sent to a phone briefly offline.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from notify.providers.base import Note, Provider, ProviderError, Target
from rthub.config import Settings
from rthub.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_REFRESH_S = 40 * 60
MAX_PAYLOAD = 4096  # bytes, Apple's limit for a regular (non-VoIP) push
EXPIRATION_S = 86_400
DEAD_REASONS = frozenset({"Unregistered", "ExpiredToken", "BadDeviceToken",
                          "DeviceTokenNotForTopic"})


def load_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The .p8 signing key (PKCS8 PEM, EC P-256); any other file stops start-up."""
    where = f"RTHUB_APNS_KEY ({path})"
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"{where} must be the .p8 key Apple issued (an unencrypted PEM "
                          f"EC P-256 key): {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{where} must be an EC P-256 key (ES256), as Apple issues them")
    return key


def payload(note: Note) -> bytes:
    """The push body: the alert iOS shows, plus what the app needs to find the notification."""
    aps: dict[str, Any] = {"alert": {"title": note.title, "body": note.body},
                           "thread-id": note.category}
    if note.priority >= 2:
        aps["sound"] = "default"
    body = {"aps": aps, "id": note.id, "data": note.data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def _reason_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify(response: httpx.Response) -> ProviderError:
    """What a refused push means for the dispatcher."""
    status = response.status_code
    answer = _reason_of(response)
    code = str(answer.get("reason") or f"HTTP_{status}")
    text = f"APNs answered {status} {code}"
    if "timestamp" in answer:
        text += f" (token inactive since {answer['timestamp']} ms)"
    if status == 410 or code in DEAD_REASONS:
        return ProviderError(text, dead_target=True, code=code)
    if status == 429 or status >= 500:
        return ProviderError(text, retryable=True, code=code)
    return ProviderError(text, code=code)


class APNs(Provider):
    """Push to iOS, iPadOS and macOS apps through APNs."""

    name = "apns"
    channel = "push"
    kinds = ("apns",)

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, topic: str,
                 url: str = "https://api.push.apple.com", *, ca: str | None = None,
                 timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.key_id, self.team_id, self.topic = key_id, team_id, topic
        self.url = url.rstrip("/")
        self._key = key
        # cafile=None: the system's trust store, as RTHUB_APNS_CA documents.
        context = ssl.create_default_context(cafile=ca)
        # http1=False: APNs speaks only HTTP/2; never fall back to HTTP/1.1.
        self._client = httpx.AsyncClient(http1=False, http2=True, verify=context,
                                         timeout=httpx.Timeout(timeout, connect=min(timeout, 5)))
        self._clock = clock  # wall clock: the provider token's iat, and its age
        self._jwt: str | None = None
        self._jwt_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> APNs | None:
        if settings.apns_key is None:
            return None
        key_id, team_id, topic = settings.apns_key_id, settings.apns_team_id, settings.apns_topic
        if key_id is None or team_id is None or topic is None:
            raise ConfigError("APNs needs RTHUB_APNS_KEY, RTHUB_APNS_KEY_ID, RTHUB_APNS_TEAM_ID "
                              "and RTHUB_APNS_TOPIC together")
        return cls(load_key(settings.apns_key), key_id, team_id, topic, settings.apns_url,
                   ca=settings.apns_ca)

    async def send(self, target: Target | None, note: Note) -> str | None:
        if target is None or target.kind not in self.kinds:
            raise ProviderError("APNs sends to an apns device token only", code="NoTarget")
        body = payload(note)
        if len(body) > MAX_PAYLOAD:
            raise ProviderError(f"APNs payload is {len(body)} bytes, over Apple's "
                                f"{MAX_PAYLOAD}", code="PayloadTooLarge")
        token = self._provider_token()
        response = await self._post(target.address, body, note, token)
        if response.status_code == 403 \
                and _reason_of(response).get("reason") == "ExpiredProviderToken":
            # Refresh once, and only if no concurrent send has already done it: Apple
            # throttles a team whose token changes too often.
            if self._jwt == token:
                log.info("APNs found the provider token expired; signing a new one")
                self._mint(self._clock())
            response = await self._post(target.address, body, note, self._provider_token())
        if response.status_code == 200:
            return response.headers.get("apns-id")
        raise classify(response)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _provider_token(self) -> str:
        now = self._clock()
        if self._jwt is None or now - self._jwt_at >= TOKEN_REFRESH_S:
            return self._mint(now)
        return self._jwt

    def _mint(self, now: float) -> str:
        self._jwt = jwt.encode({"iss": self.team_id, "iat": int(now)}, self._key,
                               algorithm="ES256", headers={"kid": self.key_id})
        self._jwt_at = now
        return self._jwt

    async def _post(self, device: str, body: bytes, note: Note, token: str) -> httpx.Response:
        urgent = note.priority >= 2
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "10" if urgent else "5",
            "apns-expiration": str(int(time.time()) + EXPIRATION_S),
            "apns-id": str(uuid.uuid4()),
            "content-type": "application/json",
        }
        try:
            return await self._client.post(f"{self.url}/3/device/{quote(device, safe='')}",
                                           content=body, headers=headers)
        except httpx.TransportError as err:
            raise ProviderError(f"APNs unreachable: {err!r}", retryable=True,
                                code=type(err).__name__) from err
