"""JWT checks made before a WebSocket upgrade is accepted (PROTOCOL.md "Connecting").

HS256 with RTHUB_JWT_SECRET, or RS256/ES256 with keys from a JWKS file or URL
(RTHUB_JWT_JWKS). ``sub`` and ``exp`` are required; ``aud`` is checked when
RTHUB_JWT_AUDIENCE is set. Unsigned tokens (``alg: none``) and any other algorithm are refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from rthub.errors import Unauthorized

_ASYMMETRIC = ("RS256", "ES256")
LEEWAY_S = 5


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end of a socket, as the token says."""

    user: str
    tenant: str
    scopes: frozenset[str]
    name: str
    expires_at: int


class TokenVerifier:
    """Verifies tokens against one HS256 secret and/or one JWKS (file path or URL)."""

    def __init__(self, secret: str | None, jwks: str | None = None,
                 audience: str | None = None) -> None:
        if not secret and not jwks:
            raise ValueError("a TokenVerifier needs RTHUB_JWT_SECRET or RTHUB_JWT_JWKS")
        self.secret = secret
        self.audience = audience
        self._jwks_client: jwt.PyJWKClient | None = None
        self._jwks: jwt.PyJWKSet | None = None
        if jwks and jwks.startswith(("http://", "https://")):
            self._jwks_client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300)
        elif jwks:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(Path(jwks).read_text()))

    def verify(self, token: str) -> Identity:
        """The token's identity, or ``Unauthorized`` saying exactly why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        key = self._key(algorithm, header.get("kid"), token)
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], audience=self.audience,
                                leeway=LEEWAY_S, options={"require": ["sub", "exp"],
                                                          "verify_aud": bool(self.audience)})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"token audience is not {self.audience!r}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token is invalid: {exc}") from None
        user, tenant = claims.get("sub"), claims.get("tenant", "default")
        if not isinstance(user, str) or not user or not isinstance(tenant, str) or not tenant:
            raise Unauthorized("token 'sub' and 'tenant' must be non-empty strings")
        scope = claims.get("scope", "")
        return Identity(user=user, tenant=tenant,
                        scopes=frozenset(scope.split() if isinstance(scope, str) else ()),
                        name=str(claims.get("name", user)), expires_at=int(claims["exp"]))

    def _key(self, algorithm: object, kid: object, token: str) -> object:
        if algorithm == "HS256" and self.secret:
            return self.secret
        if algorithm in _ASYMMETRIC and self._jwks_client is not None:
            try:
                return self._jwks_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise Unauthorized(f"no key for this token in the JWKS: {exc}") from None
        if algorithm in _ASYMMETRIC and self._jwks is not None:
            for jwk in self._jwks.keys:
                if kid is None or jwk.key_id == kid:
                    return jwk.key
            raise Unauthorized(f"no key with kid {kid!r} in the JWKS")
        raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")


def issue_token(secret: str, user: str, tenant: str = "default", scopes: str = "",
                ttl_s: int = 3600, name: str | None = None) -> str:
    """A signed HS256 token (``rthub token``, tests, the web demo in dev mode)."""
    now = int(time.time())
    claims = {"sub": user, "tenant": tenant, "iat": now, "exp": now + ttl_s,
              "name": name or user}
    if scopes:
        claims["scope"] = scopes
    return jwt.encode(claims, secret, algorithm="HS256")
