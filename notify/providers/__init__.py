"""Provider adapters, one module each; ``base`` says what they share."""

from __future__ import annotations

import importlib

from notify.providers.base import Provider
from rthub.config import Settings

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
