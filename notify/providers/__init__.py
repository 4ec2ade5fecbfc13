"""Provider adapters, one module each; ``base`` says what they share."""

from __future__ import annotations

import importlib

from notify.providers.base import Provider
from rthub.config import Settings
from rthub.errors import ConfigError

ADAPTERS = ("notify.providers.fcm:FCM", "notify.providers.apns:APNs",
            "notify.providers.webpush:WebPush", "notify.providers.smtp:SMTP",
            "notify.providers.twilio_sms:TwilioSMS",
            "notify.providers.pusher_channels:PusherChannels")


def configured(settings: Settings) -> list[Provider]:
    """Every provider whose settings are set (a bad key file is a ``ConfigError``)."""
    found = []
    for path in ADAPTERS:
        module, name = path.split(":")
        adapter = getattr(importlib.import_module(module), name).from_settings(settings)
        if adapter is not None:
            found.append(adapter)
    return found


def check(settings: Settings) -> list[str]:
    """Build every configured provider once, so a key file or value no provider could use
    stops ``rthub up`` with one line instead of failing at the first send; their names."""
    try:
        return [provider.name for provider in configured(settings)]
    except ValueError as err:  # a library refusing a value (Pusher's numeric app id)
        raise ConfigError(f"a notification provider's settings are wrong: {err}") from None
