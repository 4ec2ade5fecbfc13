"""What a notification is, checked once for every way one is sent (the HTTP API, the Python
API, other services through Ray)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rthub.errors import BadRequest

if TYPE_CHECKING:
    from notify.templates import Templates
    from rthub.config import Settings

FIELDS = {"user_id", "title", "content", "body", "priority", "category", "data", "template",
          "params", "locale", "channels"}
CHANNELS = ("in_app", "pusher", "push", "email", "sms")  # push -> email -> sms: fallbacks
NEEDS = {"pusher": "PUSHER_APP_ID", "email": "RTHUB_SMTP_URL", "sms": "TWILIO_ACCOUNT_SID",
         "push": "RTHUB_FCM_CREDENTIALS, RTHUB_APNS_KEY or RTHUB_VAPID_KEY"}
MAX_TITLE = 200
MAX_BODY = 4000
MAX_DATA_BYTES = 4096


class NotificationPriority(enum.IntEnum):
    """A CRITICAL one never waits behind LOW ones: dispatchers take the highest first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification for one user, as accepted."""

    user_id: str
    title: str
    body: str
    priority: NotificationPriority = NotificationPriority.NORMAL
    category: str = "general"
    data: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ("in_app",)

    def row(self, idempotency_key: str | None = None) -> dict[str, Any]:
        """The notification as the queue stores it (``storage.notifications``)."""
        return {"user_id": self.user_id, "category": self.category,
                "priority": int(self.priority), "title": self.title, "body": self.body,
                "data": self.data, "idempotency_key": idempotency_key,
                "channels": list(self.channels)}

    @classmethod
    def from_request(cls, payload: Any, templates: Templates | None = None,
                     available: tuple[str, ...] = ("in_app",)) -> Notification:
        """From a JSON body or keyword arguments; ``bad_request`` naming what is wrong. With
        ``template`` (and ``params``, ``locale``) the title and body are rendered now, so a
        missing template, key or parameter is an error to the sender. ``channels`` default
        to every one ``available`` on this hub (``available(settings)``)."""
        if not isinstance(payload, dict):
            raise BadRequest("a notification is a JSON object")
        unknown = set(payload) - FIELDS
        if unknown:
            raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
        if "template" in payload:
            payload = _rendered(payload, templates)
        user, title = payload.get("user_id"), payload.get("title")
        body = payload.get("body", payload.get("content", ""))
        if not isinstance(user, str) or not 1 <= len(user) <= 200:
            raise BadRequest("'user_id' must be a user id of 1 to 200 characters")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
            raise BadRequest(f"'title' must be 1 to {MAX_TITLE} characters")
        if not isinstance(body, str) or len(body) > MAX_BODY:
            raise BadRequest(f"'content' must be text of at most {MAX_BODY} characters")
        category = payload.get("category", "general")
        if not isinstance(category, str) or not 1 <= len(category) <= 64:
            raise BadRequest("'category' must be 1 to 64 characters")
        wanted = payload.get("channels", list(available))
        if not isinstance(wanted, list) or not wanted or not all(
                isinstance(c, str) for c in wanted):
            raise BadRequest("'channels' must be a non-empty list of channel names")
        unknown = [c for c in wanted if c not in CHANNELS]
        if unknown:
            raise BadRequest(f"unknown channel {unknown[0]!r}; channels are "
                             f"{', '.join(CHANNELS)}")
        missing = [c for c in wanted if c not in available]
        if missing:
            raise BadRequest(f"channel {missing[0]!r} is not configured on this hub "
                             f"({NEEDS[missing[0]]} unset); it delivers {', '.join(available)}")
        data = payload.get("data", {})
        if not isinstance(data, dict) or len(repr(data)) > MAX_DATA_BYTES:
            raise BadRequest(f"'data' must be an object of at most {MAX_DATA_BYTES} bytes")
        return cls(user, title, body, priority_of(payload.get("priority", 1)), category, data,
                   tuple(c for c in CHANNELS if c in wanted))


def available(settings: Settings) -> tuple[str, ...]:
    """The channels this hub's configuration delivers to: in-app always, the others when a
    provider of theirs is configured."""
    configured = {"in_app": True,
                  "pusher": settings.pusher_app_id is not None,
                  "push": any((settings.fcm_credentials, settings.apns_key, settings.vapid_key)),
                  "email": settings.smtp_url is not None,
                  "sms": settings.twilio_sid is not None}
    return tuple(c for c in CHANNELS if configured[c])


def _rendered(payload: dict[str, Any], templates: Templates | None) -> dict[str, Any]:
    if templates is None:
        raise BadRequest("templates are not available here")
    if {"title", "content", "body"} & set(payload):
        raise BadRequest("send either 'template' (with 'params') or 'title' and 'content'")
    name, locale = payload["template"], payload.get("locale")
    if not isinstance(name, str) or (locale is not None and not isinstance(locale, str)):
        raise BadRequest("'template' and 'locale' must be strings")
    category, title, body = templates.render(name, payload.get("params", {}), locale)
    rest = {k: v for k, v in payload.items() if k not in ("template", "params", "locale")}
    return {"category": category, **rest, "title": title, "body": body}


def priority_of(value: Any) -> NotificationPriority:
    """0-3, or a name (``"high"``), or a ``NotificationPriority``."""
    if isinstance(value, str) and value.upper() in NotificationPriority.__members__:
        return NotificationPriority[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return NotificationPriority(value)
    raise BadRequest("'priority' must be LOW, NORMAL, HIGH, CRITICAL or 0 to 3")
