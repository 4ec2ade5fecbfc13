"""Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``) on loopback.

It checks what Twilio checks, in Twilio's order and with its error bodies (``{code, message,
more_info, status}``): HTTP Basic auth as ``sid:token`` (20003), the account in the path
(20404), then the form: ``To`` in E.164 (21604, 21211), a sender (21603), ``Body`` present
and at most 1600 UTF-16 code units (21602, 21617). Scripted: numbers that unsubscribed
(21610) or are landlines (21614), and one-off failures (429 20429, 500, 503) taken in order.
Accepted messages are answered 201 with a Message resource and recorded in ``messages``.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections import deque
from email.utils import formatdate
from typing import Any

from aiohttp import BasicAuth, web

from tests.notify.servers.runner import AiohttpServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-test-auth-token"
API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

_ERRORS = {  # code: (status, message); {to} filled in
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
_BY_STATUS = {429: 20429, 500: 20500, 503: 20503}


def error(code: int, retry_after: str | None = None, **fill: str) -> web.Response:
    """Twilio's JSON error body for ``code``."""
    status, message = _ERRORS[code]
    headers = {"Retry-After": retry_after} if retry_after else None
    return web.json_response({"code": code, "message": message.format(**fill),
                              "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status}, status=status, headers=headers)


class TwilioServer(AiohttpServer):
    """``async with TwilioServer() as twilio:`` then point ``RTHUB_TWILIO_URL`` at
    ``twilio.url``."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        super().__init__(web.post(f"{API}/Accounts/{{account}}/Messages.json", self._create))
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.unsubscribed: set[str] = set()  # answer 21610
        self.landlines: set[str] = set()  # answer 21614
        self.failures: deque[tuple[int, str | None]] = deque()
        self.messages: list[dict[str, Any]] = []
        self.requests = 0

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        """The next authenticated request is answered ``status`` (429, 500 or 503)."""
        self.failures.append((status, retry_after))

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authenticated(request.headers.get("Authorization", "")):
            return error(20003)
        if request.match_info["account"] != self.account_sid:
            return error(20404, path=request.path)
        if self.failures:
            status, retry_after = self.failures.popleft()
            return error(_BY_STATUS[status], retry_after)
        form = await request.post()
        to, body = str(form.get("To", "")), form.get("Body")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return error(21604)
        if not E164.match(to):
            return error(21211, to=to)
        if not sender and not (isinstance(service, str) and SERVICE_SID.match(service)):
            return error(21603)
        if not isinstance(body, str) or not body:
            return error(21602)
        if len(body.encode("utf-16-le")) // 2 > 1600:
            return error(21617)
        if to in self.unsubscribed:
            return error(21610)
        if to in self.landlines:
            return error(21614, to=to)
        message = self._resource(to, str(sender) if sender else None,
                                 str(service) if service else None, body)
        self.messages.append(message)
        return web.json_response(message, status=201)

    def _authenticated(self, header: str) -> bool:
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return (hmac.compare_digest(auth.login, self.account_sid)
                and hmac.compare_digest(auth.password, self.auth_token))

    def _resource(self, to: str, sender: str | None, service: str | None,
                  body: str) -> dict[str, Any]:
        """A Message resource as Twilio answers a create with it."""
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True).replace("GMT", "+0000")  # RFC 2822, as Twilio
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender, "messaging_service_sid": service, "num_media": "0",
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
            # with only a messaging service, Twilio picks the sender later: "accepted"
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to,
            "uri": f"{uri}.json",
        }
