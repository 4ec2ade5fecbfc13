"""A local FCM: Google's OAuth2 token endpoint and the HTTP v1 ``messages:send`` API, checking
what Google checks (the assertion's RS256 signature, issuer, audience, scope and lifetime; the
bearer token; the project; the message's shape, string-only data, its size) and answering
errors in FCM's own format. Tests script answers per device token and one-off failures.
Served by ``runner.LocalServer``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.notify.servers.runner import LocalServer, Reply, Request

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
                  "token", "topic", "condition"}
ANDROID_FIELDS = {"collapse_key", "priority", "ttl", "restricted_package_name", "data",
                  "notification", "fcm_options", "direct_boot_ok"}
RESERVED_DATA = {"from", "notification", "message_type"}
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access "
                   "token, login cookie or other valid authentication credential.")
# errorCode (or bare google.rpc status) -> (HTTP status, google.rpc status, message)
FAILURES = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric "
                       "'Send requests' of service 'fcm.googleapis.com'."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
}
BARE_STATUSES = {  # answered without an FcmError detail
    "PERMISSION_DENIED": (403, "PERMISSION_DENIED", "The caller does not have permission"),
    "UNAUTHENTICATED": (401, "UNAUTHENTICATED", UNAUTHENTICATED),
}


def write_service_account(folder: Path, token_uri: str, project_id: str = "rthub-test",
                          key: rsa.RSAPrivateKey | None = None,
                          name: str = "service-account.json") -> tuple[Path, rsa.RSAPrivateKey]:
    """A service-account key file as the Firebase console makes one, with a fresh RSA key
    (or ``key``); returns its path and the key."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {
        "type": "service_account", "project_id": project_id,
        "private_key_id": secrets.token_hex(20), "private_key": pem,
        "client_email": f"firebase-adminsdk-test@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**21)), "auth_uri": "unused", "token_uri": token_uri,
    }
    path = folder / name
    path.write_text(json.dumps(info, indent=2))
    return path, key


def fcm_error(http_status: int, status: str, message: str, error_code: str | None = None,
              violations: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """An error body exactly as FCM's HTTP v1 API writes one."""
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if violations:
        details.append({"@type": BAD_REQUEST, "fieldViolations": [
            {"field": name, "description": text} for name, text in violations]})
    error: dict[str, Any] = {"code": http_status, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def invalid(field_name: str, text: str) -> Reply:
    return Reply.json(400, fcm_error(400, "INVALID_ARGUMENT", text,
                                     violations=[(field_name, text)]))


@dataclass
class Received:
    """One message FCM accepted."""

    project: str
    message: dict[str, Any]
    authorization: str
    name: str


class FakeFCM(LocalServer):
    """``async with FakeFCM(tmp_path) as fcm``: ``fcm.url`` for ``RTHUB_FCM_URL`` and
    ``fcm.credentials`` (a service-account file naming this server) for
    ``RTHUB_FCM_CREDENTIALS``."""

    def __init__(self, folder: Path, project: str = "rthub-test", expires_in: int = 3599) -> None:
        super().__init__()
        self.folder, self.project, self.expires_in = folder, project, expires_in
        self.credentials = folder / "service-account.json"
        self.accounts: dict[str, tuple[rsa.RSAPublicKey, str]] = {}  # email -> (key, key id)
        self.grants: list[dict[str, Any]] = []  # claims of every assertion traded for a token
        self.issued: dict[str, dict[str, Any]] = {}  # live access token -> its grant
        self.messages: list[Received] = []
        self.dead: set[str] = set()  # tokens answering 404 UNREGISTERED
        self.malformed: set[str] = set()  # tokens answering 400 "not a valid ... token"
        self._failures: deque[Reply | None] = deque()  # None: hang

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    async def __aenter__(self) -> FakeFCM:
        await super().__aenter__()
        write_service_account(self.folder, self.token_uri, self.project,
                              name=self.credentials.name)
        self.trust(self.credentials)
        return self

    def trust(self, credentials: Path) -> None:
        """Accept assertions signed with this service-account file's key."""
        info = json.loads(credentials.read_text())
        key = serialization.load_pem_private_key(info["private_key"].encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.accounts[info["client_email"]] = (key.public_key(), info["private_key_id"])

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401 UNAUTHENTICATED)."""
        self.issued.clear()

    def fail_next(self, code: str, *, retry_after: str | None = None,
                  message: str | None = None) -> None:
        """The next ``messages:send`` that passes every check fails with ``code``: an FCM
        errorCode of ``FAILURES`` or a bare status of ``BARE_STATUSES``."""
        with_detail = code in FAILURES
        http_status, status, default = FAILURES[code] if with_detail else BARE_STATUSES[code]
        body = fcm_error(http_status, status, message or default,
                         code if with_detail else None)
        self._failures.append(Reply.json(http_status, body,
                                         [("retry-after", retry_after)] if retry_after else []))

    def answer_next(self, reply: Reply) -> None:
        """The next ``messages:send`` gets exactly ``reply`` (a proxy's 502, say)."""
        self._failures.append(reply)

    def hang_next(self) -> None:
        self._failures.append(None)

    async def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        if matched := SEND_PATH.match(request.path):
            if request.method != "POST":
                return Reply.json(405, fcm_error(405, "INVALID_ARGUMENT", "Method not allowed"))
            return await self._send(matched[1], request)
        return Reply.json(404, fcm_error(404, "NOT_FOUND", "Requested entity was not found."))

    def _token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if request.method != "POST" or not (request.header("content-type") or "").startswith(
                "application/x-www-form-urlencoded"):
            return Reply.json(400, {"error": "invalid_request",
                                    "error_description": "Expected a form POST"})
        if form.get("grant_type") != GRANT_TYPE:
            return Reply.json(400, {"error": "unsupported_grant_type", "error_description":
                                    f"Invalid grant_type: {form.get('grant_type', '')}"})
        claims, problem = self._verify(form.get("assertion", ""))
        if claims is None:
            return Reply.json(400, {"error": "invalid_grant", "error_description": problem})
        if SCOPE not in str(claims.get("scope", "")).split():
            return Reply.json(400, {"error": "invalid_scope", "error_description":
                                    "Invalid OAuth scope or ID token audience provided."})
        token = f"ya29.{secrets.token_urlsafe(48)}"
        self.grants.append(claims)
        self.issued[token] = claims
        return Reply.json(200, {"access_token": token, "expires_in": self.expires_in,
                                "token_type": "Bearer"})

    def _verify(self, assertion: str) -> tuple[dict[str, Any] | None, str]:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return None, "Invalid JWT: malformed assertion."
        account = self.accounts.get(str(unverified.get("iss")))
        if account is None:
            return None, "Invalid grant: account not found"
        public_key, key_id = account
        if header.get("kid", key_id) != key_id or header.get("alg") != "RS256":
            return None, "Invalid JWT Signature."
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256"],
                                audience=self.token_uri, leeway=60,
                                options={"require": ["iss", "aud", "iat", "exp"]})
        except jwt.InvalidSignatureError:
            return None, "Invalid JWT Signature."
        except jwt.PyJWTError as err:
            return None, f"Invalid JWT: {err}"
        if not 0 < claims["exp"] - claims["iat"] <= 3600 or claims["iat"] > time.time() + 60:
            return None, ("Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                          "a reasonable timeframe. Check your iat and exp values in the JWT "
                          "claim.")
        return claims, ""

    async def _send(self, project: str, request: Request) -> Reply:
        authorization = request.header("authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token not in self.issued:
            return Reply.json(401, fcm_error(401, "UNAUTHENTICATED", UNAUTHENTICATED))
        if project != self.project:
            return Reply.json(403, fcm_error(
                403, "PERMISSION_DENIED", f"Permission 'cloudmessaging.messages.create' denied "
                f"on resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it "
                "may not exist)."))
        try:
            body = json.loads(request.body)
        except ValueError:
            return invalid("", "Invalid JSON payload received.")
        refused = check_message(body)
        if refused is not None:
            return refused
        if self._failures:
            failure = self._failures.popleft()
            return await self.hang() if failure is None else failure
        device = body["message"].get("token")
        if device in self.dead:
            return Reply.json(404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                                             "UNREGISTERED"))
        if device in self.malformed:
            return Reply.json(400, fcm_error(
                400, "INVALID_ARGUMENT", "The registration token is not a valid FCM "
                "registration token", "INVALID_ARGUMENT"))
        name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        self.messages.append(Received(project, body["message"], authorization, name))
        return Reply.json(200, {"name": name})


def check_message(body: Any) -> Reply | None:
    """FCM's checks of a ``messages:send`` body; the refusal, or None when it passes."""
    if not isinstance(body, dict) or "message" not in body:
        return invalid("message", "Invalid JSON payload received. Missing 'message'.")
    if extra := set(body) - {"message", "validate_only"}:
        return invalid(sorted(extra)[0], f"Invalid JSON payload received. Unknown name "
                       f"\"{sorted(extra)[0]}\": Cannot find field.")
    message = body["message"]
    if not isinstance(message, dict):
        return invalid("message", "Invalid value at 'message'")
    if extra := set(message) - MESSAGE_FIELDS:
        return invalid("message", f"Invalid JSON payload received. Unknown name "
                       f"\"{sorted(extra)[0]}\" at 'message': Cannot find field.")
    if sum(1 for target in ("token", "topic", "condition") if target in message) != 1:
        return invalid("message", "Exactly one of token, topic or condition is required.")
    if not isinstance(message.get("token", ""), str) or message.get("token") == "":
        return invalid("message.token", "Invalid registration token")
    notification = message.get("notification", {})
    for key in ("title", "body"):
        if not isinstance(notification, dict) or not isinstance(notification.get(key, ""), str):
            return invalid(f"message.notification.{key}",
                           f"Invalid value at 'message.notification.{key}' (TYPE_STRING)")
    data = message.get("data", {})
    if not isinstance(data, dict):
        return invalid("message.data", "Invalid value at 'message.data'")
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            return invalid(f"message.data[{index}].value", f"Invalid value at "
                           f"'message.data[{index}].value' (TYPE_STRING), {json.dumps(value)}")
        if key in RESERVED_DATA or key.startswith(("google", "gcm")):
            return invalid("message.data", f"Invalid data payload key: {key}")
    if sum(len(k.encode()) + len(v.encode()) for k, v in data.items()) > 4096:
        return invalid("message", "Android message is too big")
    android = message.get("android", {})
    if not isinstance(android, dict) or set(android) - ANDROID_FIELDS:
        return invalid("message.android", "Invalid value at 'message.android'")
    if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
        return invalid("message.android.priority", f"Invalid value at 'message.android."
                       f"priority' (type.googleapis.com/google.firebase.fcm.v1."
                       f"AndroidMessagePriority), {json.dumps(android['priority'])}")
    apns = message.get("apns", {})
    headers = apns.get("headers", {}) if isinstance(apns, dict) else None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return invalid("message.apns.headers", "Invalid value at 'message.apns.headers' "
                       "(TYPE_STRING)")
    return None
