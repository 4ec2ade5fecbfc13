"""SMS through Twilio's Messages API, with the ``twilio`` library's asyncio client.

The library has no setting for its API root: ``api.twilio.com`` is fixed in its generated
domain classes, and its region/edge options only rewrite the host name within twilio.com.
The supported extension point is the HTTP client (``Client(http_client=...)``), so
``_HttpClient`` (an ``AsyncTwilioHttpClient``) moves each request onto ``RTHUB_TWILIO_URL``
when that is set. It also keeps the answer's headers for the send being made: the library's
``TwilioRestException`` drops them, and a 429's ``Retry-After`` is one of them.

A transport error is retryable, though a timeout may come after Twilio took the message:
the Messages API has no idempotency key, so such a retry can send the SMS twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notify.providers.base import Note, Provider, ProviderError, Target, retry_after
from rthub.config import Settings

log = logging.getLogger(__name__)

MAX_BODY = 1600  # Twilio's limit, in UTF-16 code units (an emoji counts twice)
DEAD_CODES = frozenset({21211, 21610, 21614})  # invalid To, unsubscribed (STOP), not mobile
TIMEOUT_S = 10.0

# The headers of the answer to the send running in this task (see the module docstring).
_answer: ContextVar[dict[str, Mapping[str, str]] | None] = ContextVar("twilio_answer",
                                                                      default=None)


def _quiet_logger() -> logging.Logger:
    """The library logs every request and response at INFO; ours says it at WARNING unless
    the operator configured ``notify.providers.twilio_sms.http`` otherwise."""
    wire = logging.getLogger(f"{__name__}.http")
    if wire.level == logging.NOTSET:
        wire.setLevel(logging.WARNING)
    return wire


class _HttpClient(AsyncTwilioHttpClient):
    """One pooled aiohttp session, made on first use (aiohttp wants a running loop), requests
    moved onto ``root`` when set, and the answer's headers kept for ``TwilioSMS.send``."""

    def __init__(self, root: str | None) -> None:
        super().__init__(pool_connections=False, timeout=TIMEOUT_S, logger=_quiet_logger())
        self.root = root.rstrip("/") if root else None

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None,
                      timeout: float | None = None,  # noqa: ASYNC109 (the library's signature)
                      allow_redirects: bool = False) -> Response:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        if self.root:
            parts = urlsplit(url)
            url = self.root + parts.path + (f"?{parts.query}" if parts.query else "")
        response = await super().request(method, url, params=params, data=data,
                                         headers=headers, auth=auth,
                                         timeout=timeout or self.timeout,
                                         allow_redirects=allow_redirects)
        answer = _answer.get()
        if answer is not None:
            answer["headers"] = response.headers
        return response

    async def close(self) -> None:
        await super().close()
        self.session = None


class TwilioSMS(Provider):
    """Sends ``title\\nbody`` to an E.164 number from ``TWILIO_FROM`` (a number, or a
    messaging service when it starts with ``MG``); the message SID is the id."""

    name = "twilio"
    channel = "sms"
    kinds = ("sms",)

    def __init__(self, sid: str, token: str, sender: str, root: str | None = None) -> None:
        self.http = _HttpClient(root)
        self.client = Client(sid, token, http_client=self.http)
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSMS | None:
        """None without ``TWILIO_ACCOUNT_SID``; config checks the group is complete."""
        if settings.twilio_sid is None:
            return None
        return cls(settings.twilio_sid, settings.twilio_token or "", settings.twilio_from or "",
                   settings.twilio_url)

    async def send(self, target: Target | None, note: Note) -> str | None:
        """Create the Message; Twilio queues it and answers with its SID at once."""
        if target is None:
            raise ProviderError("an SMS needs a phone number", code="twilio no_target")
        sender: dict[str, Any] = ({"messaging_service_sid": self.sender}
                                  if self.sender.startswith("MG") else {"from_": self.sender})
        answer: dict[str, Mapping[str, str]] = {}
        token = _answer.set(answer)
        try:
            message = await self.client.messages.create_async(
                to=target.address, body=clip(text_of(note), MAX_BODY), **sender)
        except (TwilioRestException, TwilioServiceException) as err:
            raise classify(err, answer.get("headers", {})) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise ProviderError(f"Twilio unreachable: {err!r}", retryable=True,
                                code="twilio transport") from err
        except json.JSONDecodeError as err:  # a 2xx not JSON: maybe sent, so never retried
            raise ProviderError(f"Twilio answered an unreadable body: {err}",
                                code="twilio bad_answer") from err
        finally:
            _answer.reset(token)
        log.debug("twilio accepted %s for notification %s", message.sid, note.id)
        return message.sid

    async def aclose(self) -> None:
        """Close the pooled session."""
        await self.http.close()


def text_of(note: Note) -> str:
    """Title and body on their own lines (either may be empty)."""
    return "\n".join(part for part in (note.title, note.body) if part)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units (how Twilio counts: a character beyond
    the BMP, an emoji, is two), ending in an ellipsis when cut."""
    if len(text.encode("utf-16-le")) // 2 <= limit:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit - 1:
            return text[:index] + "\u2026"
    return text


def classify(err: TwilioRestException | TwilioServiceException,
             headers: Mapping[str, str]) -> ProviderError:
    """Twilio's answer as retry / dead target / permanent, by its error code and status."""
    status, code = err.status, err.code or err.status
    text = getattr(err, "msg", None) or getattr(err, "title", "")
    message = f"Twilio {status} {code}: {text}"
    if status == 429 or code == 20429:
        return ProviderError(message, retryable=True, code=f"twilio {code}",
                             retry_after_s=retry_after(headers.get("Retry-After")))
    if status >= 500:
        return ProviderError(message, retryable=True, code=f"twilio {code}")
    if code in DEAD_CODES:
        return ProviderError(message, dead_target=True, code=f"twilio {code}")
    return ProviderError(message, code=f"twilio {code}")  # 20003 auth and other 4xx


