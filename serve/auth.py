"""JWT checks made before a WebSocket upgrade is accepted (PROTOCOL.md "Connecting").

HS256 with RTHUB_JWT_SECRET, or RS256/ES256 with keys from a JWKS file or URL
(RTHUB_JWT_JWKS; ``serve.security.jwks`` keeps a URL's keys fresh for rotation). ``sub`` and
``exp`` are required; ``aud`` and ``iss`` are checked when RTHUB_JWT_AUDIENCE /
RTHUB_JWT_ISSUER are set. Unsigned tokens (``alg: none``) and any other algorithm are
refused, and so is a token on the revocation list (``serve.security.revocation``).
Verification is synchronous and local (no I/O): it runs in picows' upgrade hook.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from rthub.errors import Forbidden, Unauthorized
from serve.security.jwks import KeySet

_ASYMMETRIC = ("RS256", "ES256")
LEEWAY_S = 5
# A tenant names keys everywhere: Redis joins tenant and topic with '/' and tags keys with
# braces (one cluster slot), so neither may be in a tenant's name.
TENANT_MAX = 128
_TENANT_FORBIDDEN = frozenset("/{} ")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end of a socket, as the token says."""

    user: str
    tenant: str
    scopes: frozenset[str]
    name: str
    expires_at: int
    token_id: str | None = None  # ``jti``: what a revocation names
    issued_at: int | None = None  # ``iat``: a user's revocation covers tokens issued before


class TokenRevoked(Unauthorized):
    """A token on the revocation list (an open socket of it closes with 4410)."""


class TokenVerifier:
    """Verifies tokens against one HS256 secret and/or one JWKS (file path or URL)."""

    def __init__(self, secret: str | None, jwks: str | None = None,
                 audience: str | None = None, issuer: str | None = None,
                 refresh_s: float = 300.0) -> None:
        if not secret and not jwks:
            raise ValueError("a TokenVerifier needs RTHUB_JWT_SECRET or RTHUB_JWT_JWKS")
        self.secret = secret
        self.audience = audience
        self.issuer = issuer
        self.keys = KeySet(jwks, refresh_s) if jwks else None
        # a check against the revocation list (``Revocations.check``), once one is kept
        self.revoked: Callable[[Identity], None] | None = None

    def verify(self, token: str) -> Identity:
        """The token's identity, or ``Unauthorized`` saying exactly why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        key = self._key(algorithm, header.get("kid"))
        required = ["sub", "exp", *(["iss"] if self.issuer else [])]
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], audience=self.audience,
                                issuer=self.issuer, leeway=LEEWAY_S,
                                options={"require": required,
                                         "verify_aud": bool(self.audience)})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"token audience is not {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"token issuer is not {self.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token is invalid: {exc}") from None
        user, tenant = claims.get("sub"), claims.get("tenant", "default")
        if not isinstance(user, str) or not user or not isinstance(tenant, str) or not tenant:
            raise Unauthorized("token 'sub' and 'tenant' must be non-empty strings")
        if len(tenant) > TENANT_MAX or not tenant.isprintable() or any(
                c in _TENANT_FORBIDDEN for c in tenant):
            raise Unauthorized(f"token 'tenant' must be 1 to {TENANT_MAX} printable "
                               "characters without spaces, '/', '{' or '}'")
        scope = claims.get("scope", "")
        jti, iat = claims.get("jti"), claims.get("iat")
        identity = Identity(user=user, tenant=tenant,
                            scopes=frozenset(scope.split() if isinstance(scope, str) else ()),
                            name=str(claims.get("name", user)), expires_at=int(claims["exp"]),
                            token_id=jti if isinstance(jti, str) and jti else None,
                            issued_at=int(iat) if isinstance(iat, int | float) else None)
        if self.revoked is not None:
            self.revoked(identity)
        return identity

    def _key(self, algorithm: object, kid: object) -> object:
        if algorithm == "HS256" and self.secret:
            return self.secret
        if algorithm in _ASYMMETRIC and self.keys is not None:
            return self.keys.key(kid)
        raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")


def refreshed(verifier: TokenVerifier, current: Identity, token: str) -> Identity:
    """The identity a fresh token gives an open socket (``session.refresh``): it must verify
    and name the socket's own user and tenant (``Unauthorized`` / ``Forbidden`` else)."""
    identity = verifier.verify(token)
    if (identity.user, identity.tenant) != (current.user, current.tenant):
        raise Forbidden("session.refresh needs a token of the socket's own user and tenant")
    return identity


def issue_token(secret: str, user: str, tenant: str = "default", scopes: str = "",
                ttl_s: int = 3600, name: str | None = None, **extra: object) -> str:
    """A signed HS256 token (``rthub token``, tests, the web demo in dev mode); each has a
    ``jti`` of its own, so it can be revoked alone."""
    now = int(time.time())
    claims = {"sub": user, "tenant": tenant, "iat": now, "exp": now + ttl_s,
              "name": name or user, "jti": secrets.token_hex(12), **extra}
    if scopes:
        claims["scope"] = scopes
    return jwt.encode(claims, secret, algorithm="HS256")
