"""Firebase Cloud Messaging through its HTTP v1 API (``messages:send``), the only FCM API
Google still serves: one POST per device token, authorised by a short-lived OAuth2 access
token that the service account's own key obtains (a signed JWT exchanged at ``token_uri``).

No Google SDK: the exchange is one form POST, and keeping it here keeps what FCM answers,
and how each answer is classified, in one readable place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from notify.providers.base import Note, Provider, ProviderError, Target, retry_after
from rthub.config import Settings
from rthub.errors import ConfigError

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_S = 3600  # Google refuses assertions living longer than an hour
REFRESH_MARGIN_S = 300  # renew the access token this long before FCM would refuse it
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
NOT_A_TOKEN = "not a valid FCM registration token"  # INVALID_ARGUMENT about the target
DEAD_CODES = frozenset({"UNREGISTERED"})
RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a service-account key file that sending needs."""

    project_id: str
    client_email: str
    private_key: RSAPrivateKey
    token_uri: str
    key_id: str | None = None


def load_account(path: str | Path) -> ServiceAccount:
    """Read a service-account key file; a file FCM could never accept stops start-up."""
    where = f"RTHUB_FCM_CREDENTIALS ({path})"
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{where} must be a Firebase service-account JSON key file: "
                          f"{err}") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f"{where} is not a service-account key: \"type\" must be "
                          "\"service_account\" (download one from the Firebase console, "
                          "Project settings > Service accounts)")
    fields = ("project_id", "private_key", "client_email", "token_uri")
    missing = [name for name in fields if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")
    try:
        key = serialization.load_pem_private_key(info["private_key"].encode(), None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: private_key is not an unencrypted PEM key ({err})") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{where}: private_key must be an RSA key (RS256)")
    key_id = info.get("private_key_id")
    return ServiceAccount(info["project_id"], info["client_email"], key, info["token_uri"],
                          key_id if isinstance(key_id, str) and key_id else None)


def message(token: str, note: Note) -> dict[str, Any]:
    """The ``messages:send`` body. FCM's ``data`` is a map of strings: anything else is sent
    as its JSON text, and ``id``/``category`` let the app find the notification."""
    data = {str(key): value if isinstance(value, str)
            else json.dumps(value, separators=(",", ":"), default=str)
            for key, value in note.data.items()}
    data.update(id=note.id, category=note.category)
    urgent = note.priority >= 2
    return {"message": {
        "token": token,
        "notification": {"title": note.title, "body": note.body},
        "data": data,
        "android": {"priority": "HIGH" if urgent else "NORMAL"},
        "apns": {"headers": {"apns-priority": "10" if urgent else "5"}},
    }}


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind] \
        if isinstance(details, list) else []


def fcm_error_code(error: dict[str, Any]) -> str | None:
    """The ``errorCode`` of the FcmError detail: what FCM itself says went wrong."""
    return next((d["errorCode"] for d in _details(error, FCM_ERROR)
                 if isinstance(d.get("errorCode"), str)), None)


def _about_the_token(error: dict[str, Any]) -> bool:
    if NOT_A_TOKEN in str(error.get("message", "")):
        return True
    return any(v.get("field") == "message.token" for d in _details(error, BAD_REQUEST)
               for v in d.get("fieldViolations", ()) if isinstance(v, dict))


def classify(response: httpx.Response) -> ProviderError:
    """What a refused ``messages:send`` means for the dispatcher."""
    status = response.status_code
    error = _error_of(response)
    code = fcm_error_code(error) or error.get("status") or f"HTTP_{status}"
    text = f"FCM answered {status} {code}: {error.get('message') or response.reason_phrase}"
    if code in DEAD_CODES or (code == "INVALID_ARGUMENT" and _about_the_token(error)):
        return ProviderError(text, dead_target=True, code=code)
    if status == 429 or status >= 500 or code in RETRYABLE_CODES:
        return ProviderError(text, retryable=True, code=code,
                             retry_after_s=retry_after(response.headers.get("retry-after")))
    return ProviderError(text, code=code)


class FCM(Provider):
    """Push to Android (and iOS apps using Firebase) through FCM."""

    name = "fcm"
    channel = "push"
    kinds = ("fcm",)

    def __init__(self, account: ServiceAccount, url: str = "https://fcm.googleapis.com", *,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.account = account
        self.endpoint = f"{url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 5)))
        self._clock = clock  # when the cached access token is due for renewal
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> FCM | None:
        if settings.fcm_credentials is None:
            return None
        return cls(load_account(settings.fcm_credentials), settings.fcm_url)

    async def send(self, target: Target | None, note: Note) -> str | None:
        if target is None or target.kind not in self.kinds:
            raise ProviderError("FCM sends to an fcm device token only", code="NoTarget")
        body = message(target.address, note)
        token = await self._access_token()
        response = await self._post(body, token)
        if response.status_code == 401 and fcm_error_code(_error_of(response)) is None:
            # Our access token was refused (revoked, or the clock lied): one fresh one.
            # A 401 carrying an FcmError (THIRD_PARTY_AUTH_ERROR) is about APNs/Web Push
            # credentials in the Firebase project; a new token would not change it.
            log.info("FCM refused the access token; fetching a new one")
            response = await self._post(body, await self._access_token(stale=token))
        if response.status_code == 200:
            try:
                name = response.json().get("name")
            except (ValueError, AttributeError):
                name = None
            return name if isinstance(name, str) else None
        raise classify(response)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, body: dict[str, Any], token: str) -> httpx.Response:
        try:
            return await self._client.post(self.endpoint, json=body,
                                           headers={"authorization": f"Bearer {token}"})
        except httpx.TransportError as err:
            raise ProviderError(f"FCM unreachable: {err!r}", retryable=True,
                                code=type(err).__name__) from err

    async def _access_token(self, stale: str | None = None) -> str:
        """The cached access token, or a new one when it is due or was ``stale`` (refused);
        concurrent sends share one exchange."""
        async with self._token_lock:
            if self._token is not None and self._token != stale \
                    and self._clock() < self._token_until:
                return self._token
            self._token, lifetime = await self._exchange()
            self._token_until = self._clock() + lifetime - min(REFRESH_MARGIN_S, lifetime / 2)
            return self._token

    async def _exchange(self) -> tuple[str, float]:
        """Sign an assertion with the service account's key and trade it for a token."""
        account = self.account
        now = int(time.time())
        claims = {"iss": account.client_email, "scope": SCOPE, "aud": account.token_uri,
                  "iat": now, "exp": now + ASSERTION_LIFETIME_S}
        assertion = jwt.encode(claims, account.private_key, algorithm="RS256",
                               headers={"kid": account.key_id} if account.key_id else None)
        try:
            response = await self._client.post(
                account.token_uri, data={"grant_type": GRANT_TYPE, "assertion": assertion})
        except httpx.TransportError as err:
            raise ProviderError(f"FCM token endpoint unreachable: {err!r}", retryable=True,
                                code=type(err).__name__) from err
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            code = str(answer.get("error") or f"HTTP_{response.status_code}")
            text = (f"FCM token endpoint answered {response.status_code} {code}: "
                    f"{answer.get('error_description', response.reason_phrase)}")
            retry = response.status_code == 429 or response.status_code >= 500
            raise ProviderError(text, retryable=retry, code=code, retry_after_s=retry_after(
                response.headers.get("retry-after")) if retry else None)
        try:
            lifetime = float(answer.get("expires_in", ASSERTION_LIFETIME_S))
        except (TypeError, ValueError):
            lifetime = float(ASSERTION_LIFETIME_S)
        log.debug("FCM access token for %s, valid %.0f s", account.client_email, lifetime)
        return answer["access_token"], lifetime
