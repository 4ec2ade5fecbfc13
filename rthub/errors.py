"""One exception tree for the hub.

    HubError                      root; carries the protocol error ``code``
    ├── ConfigError               start-up: a wrong environment value (code ``internal``)
    ├── BadRequest                any layer: the message cannot be understood (``bad_request``)
    ├── Unauthorized              gateway: no valid token (``unauthorized``; close 4401)
    ├── Forbidden                 entity: the caller may not do this (``forbidden``)
    ├── NotFound                  entity: the target does not exist (``not_found``)
    ├── Conflict                  entity: the request clashes with current state (``conflict``)
    ├── TooLarge                  gateway: frame or payload over its limit (``too_large``)
    ├── RateLimited               entity/gateway: too many requests (``rate_limited``, with
    │                             ``retry_after_ms``)
    └── Unavailable               runtime/storage: outcome unknown, retry with the same
        │                         idempotency key (``unavailable``)
        └── Overloaded            runtime: refused before it ran, at a bound (``unavailable``,
                                  with ``retry_after_ms``); nothing happened, retry later

Handlers raise these; the runtime turns them into ``error`` replies with the same ``code``.
Anything else becomes ``internal`` and is logged with its traceback.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Root of every error the hub reports to a client."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_content(self) -> dict[str, Any]:
        """The ``error`` frame's content, as PROTOCOL.md defines it."""
        return {"code": self.code, "message": self.message}


class ConfigError(HubError):
    """An environment variable has a value the hub cannot run with."""


class BadRequest(HubError):
    code = "bad_request"


class Unauthorized(HubError):
    code = "unauthorized"


class Forbidden(HubError):
    code = "forbidden"


class NotFound(HubError):
    code = "not_found"


class Conflict(HubError):
    code = "conflict"


class TooLarge(HubError):
    code = "too_large"


class RateLimited(HubError):
    """Too many requests; the error says when the next one will be accepted."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms

    def to_content(self) -> dict[str, Any]:
        return {**super().to_content(), "retry_after_ms": self.retry_after_ms}


class Unavailable(HubError):
    """The outcome is unknown (a host died mid-call, storage refused a write)."""

    code = "unavailable"


class Overloaded(Unavailable):
    """Refused at a bound before anything ran (admission control); try again after
    ``retry_after_ms``. Same code as ``Unavailable``: a client retries either the same way."""

    def __init__(self, message: str, retry_after_ms: int, where: str = "") -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.where = where  # which bound refused it (metrics label), not sent to clients

    def to_content(self) -> dict[str, Any]:
        return {**super().to_content(), "retry_after_ms": self.retry_after_ms}


_BY_CODE = {cls.code: cls for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
                                      TooLarge, Unavailable)}


def from_content(content: dict[str, str]) -> HubError:
    """Rebuild the error a remote host reported, keeping its class and message."""
    if content.get("code") == RateLimited.code:
        return RateLimited(content.get("message", ""), int(content.get("retry_after_ms", 0)))
    if content.get("code") == Unavailable.code and "retry_after_ms" in content:
        return Overloaded(content.get("message", ""), int(content["retry_after_ms"]),
                          str(content.get("where", "")))
    cls = _BY_CODE.get(content.get("code", ""), HubError)
    return cls(content.get("message", ""))
