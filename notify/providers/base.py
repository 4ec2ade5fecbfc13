"""What every provider adapter is: it sends one notification to one target and says, when it
fails, whether the failure is worth a retry, when, and whether the target is dead.

The dispatcher (``notify.dispatcher``) owns retries, backoff, token pruning and channel
fallback; an adapter only speaks its provider's protocol and classifies its answers.
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rthub.config import Settings


@dataclass(frozen=True, slots=True)
class Note:
    """The notification as a provider renders it."""

    id: str
    tenant: str
    user_id: str
    title: str
    body: str
    priority: int = 1  # NotificationPriority: 0 LOW .. 3 CRITICAL
    category: str = "general"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a user is reached on one provider (``POST /v1/devices``): an FCM or APNs device
    token, a Web Push subscription endpoint (with ``data = {"p256dh", "auth"}``), an email
    address or a phone number."""

    kind: str  # fcm, apns, webpush, email, sms
    address: str
    app: str = "default"
    data: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A send the provider refused or that did not reach it.

    ``retryable``: the same send may succeed later (``retry_after_s`` when the provider said
    when). ``dead_target``: the token or subscription will never work again; the registry
    drops it. ``code``: the provider's own error code, kept in the delivery's state.
    """

    def __init__(self, message: str, *, retryable: bool = False, dead_target: bool = False,
                 retry_after_s: float | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.dead_target = dead_target
        self.retry_after_s = retry_after_s
        self.code = code


class Provider:
    """One provider. ``channel`` is the user-facing channel it serves (push, email, sms,
    pusher); ``kinds`` the target kinds it sends to (empty: it needs no target, as Pusher,
    which publishes on the user's own channel)."""

    name: ClassVar[str]
    channel: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Provider | None:
        """The adapter as configured, or None when its settings are unset."""
        raise NotImplementedError

    async def send(self, target: Target | None, note: Note) -> str | None:
        """Send; the provider's message id if it gives one. Raises ``ProviderError``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (the notifier stopping)."""


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110 10.2.3: delta-seconds or an HTTP
    date), never negative; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())
