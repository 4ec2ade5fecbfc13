"""Pusher Channels' trigger endpoint (``POST /apps/{app_id}/events``) on loopback.

It checks the request signing as Pusher documents it: query parameters ``auth_key``,
``auth_timestamp`` (within 600 s of now), ``auth_version=1.0``, ``body_md5`` (hex MD5 of the
body) and ``auth_signature``, the hex HMAC-SHA256, keyed by the app secret, of
``POST\\n<path>\\n`` and the other parameters with lower-cased keys, sorted by key, joined as
``k=v`` with ``&``. A refusal is 401 with a plain-text reason (``Invalid signature: ...``).
Then the body, JSON ``{name, channels | channel, data, socket_id?}``: ``data`` a string of at
most 10240 bytes (else 413), 1 to 100 valid channel names. Scripted one-off failures (500,
503, 429, 413) are taken in order. Accepted events are answered 200 ``{}`` and recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections import deque
from typing import Any

from aiohttp import web

from tests.notify.servers.runner import AiohttpServer

APP_ID = "424242"
KEY = "pusher-test-key"
SECRET = "pusher-test-secret"
CHANNEL = re.compile(r"^[A-Za-z0-9_\-=@,.;]{1,164}$")
SOCKET_ID = re.compile(r"^\d+\.\d+$")
MAX_DATA = 10_240
MAX_CHANNELS = 100
WINDOW_S = 600

_REASONS = {429: "Too many requests", 413: "Request Entity Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


def string_to_sign(method: str, path: str, query: dict[str, str]) -> str:
    """What Pusher signs: method, path and the sorted parameters but the signature."""
    params = sorted((key.lower(), value) for key, value in query.items()
                    if key.lower() != "auth_signature")
    return "\n".join([method, path, "&".join(f"{key}={value}" for key, value in params)])


class PusherServer(AiohttpServer):
    """``async with PusherServer() as pusher:`` then point ``RTHUB_PUSHER_URL`` at
    ``pusher.url``."""

    def __init__(self, app_id: str = APP_ID, key: str = KEY, secret: str = SECRET) -> None:
        super().__init__(web.post("/apps/{app_id}/events", self._trigger))
        self.app_id, self.key, self.secret = app_id, key, secret
        self.failures: deque[int] = deque()
        self.events: list[dict[str, Any]] = []
        self.requests = 0

    def fail_next(self, status: int) -> None:
        """The next correctly signed request is answered ``status``."""
        self.failures.append(status)

    async def _trigger(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.match_info["app_id"] != self.app_id:
            return web.Response(status=404, text=f"Unknown app {request.match_info['app_id']}")
        body = await request.read()
        refused = self._unauthenticated(request, body)
        if refused:
            return web.Response(status=401, text=refused)
        if self.failures:
            status = self.failures.popleft()
            return web.Response(status=status, text=_REASONS.get(status, "Error"))
        if request.content_type != "application/json":
            return web.Response(status=400, text="Content-Type must be application/json")
        try:
            event = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="Request body is not JSON")
        problem, status = self._invalid(event)
        if problem:
            return web.Response(status=status, text=problem)
        channels = event.get("channels") or [event["channel"]]
        self.events.append({"name": event["name"], "channels": channels,
                            "data": event["data"], "socket_id": event.get("socket_id"),
                            "auth_key": request.query["auth_key"]})
        return web.json_response({})

    def _unauthenticated(self, request: web.Request, body: bytes) -> str | None:
        """Why the signing is wrong, or None."""
        query = {key.lower(): value for key, value in request.query.items()}
        missing = [name for name in ("auth_key", "auth_timestamp", "auth_version",
                                     "auth_signature", "body_md5") if name not in query]
        if missing:
            return f"Missing parameter {missing[0]}"
        if not hmac.compare_digest(query["auth_key"], self.key):
            return "Unknown auth_key"
        if query["auth_version"] != "1.0":
            return f"Unsupported auth_version {query['auth_version']}"
        try:
            stamp = int(query["auth_timestamp"])
        except ValueError:
            return "auth_timestamp is not an integer"
        now = int(time.time())
        if abs(now - stamp) > WINDOW_S:
            return (f"Timestamp expired: Given timestamp ({stamp}) not within {WINDOW_S}s of "
                    f"server time ({now})")
        if query["body_md5"] != hashlib.md5(body).hexdigest():
            return "The md5 of the body does not match the body_md5 parameter"
        signed = string_to_sign(request.method, request.path, dict(request.query))
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(query["auth_signature"], expected):
            return (f"Invalid signature: Expected HMAC SHA256 hex digest of {signed!r}, but got "
                    f"{query['auth_signature']}")
        return None

    @staticmethod
    def _invalid(event: Any) -> tuple[str | None, int]:
        """What is wrong with the event, and the status that says so."""
        if not isinstance(event, dict):
            return "Request body must be a JSON object", 400
        if not isinstance(event.get("name"), str) or not 1 <= len(event["name"]) <= 200:
            return "Event name must be a string of 1 to 200 characters", 400
        if not isinstance(event.get("data"), str):
            return "Event data must be a string", 400
        if len(event["data"].encode()) > MAX_DATA:
            return f"Event data exceeds the {MAX_DATA} byte limit", 413
        channels = event.get("channels")
        if channels is None:
            channels = [event["channel"]] if "channel" in event else None
        if not isinstance(channels, list) or not channels:
            return "Missing channels", 400
        if len(channels) > MAX_CHANNELS:
            return f"Too many channels: at most {MAX_CHANNELS}", 400
        bad = [chan for chan in channels if not isinstance(chan, str) or not CHANNEL.match(chan)]
        if bad:
            return f"Invalid channel name {bad[0]!r}", 400
        socket_id = event.get("socket_id")
        if socket_id is not None and not (isinstance(socket_id, str)
                                          and SOCKET_ID.match(socket_id)):
            return f"Invalid socket_id {socket_id!r}", 400
        return None, 200
