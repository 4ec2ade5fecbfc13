"""Pusher Channels: event ``notification`` on the user's private channel, with the ``pusher``
library (it signs each request and checks the channel name).

Asynchronous through the library's aiohttp backend, extended (``_Backend``): the stock
``pusher.aiohttp.AsyncIOBackend`` works with aiohttp 3.14 (checked) but opens and closes a session,
so a TCP and TLS handshake, per request, and folds a refusal's status into the text of a
``PusherBadStatus``. Ours keeps one session and raises the status as a number.

Channel names (``channel_of``): Pusher allows ``[A-Za-z0-9_\\-=@,.;]``, at most 164
characters. A user id made of those characters other than ``=`` is used as it is
(``private-user-ana``, ``private-user-ana@example.com``); every other character is written
``=XX`` for each byte of its UTF-8, in upper-case hex (``auth0|42`` -> ``auth0=7C42``,
``a=b`` -> ``a=3Db``), which ``user_of`` reverses. An id whose escaped form would pass 151
characters (164 less the prefix) is named ``==`` and the hex SHA-256 of its UTF-8 instead:
still one channel per user, not reversible. Neither form can be mistaken for the other, as
an escape is always ``=`` and two hex digits. A client computes the same name to subscribe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pusher
from pusher.aiohttp import AsyncIOBackend

from notify.providers.base import Note, Provider, ProviderError, Target
from rthub.config import Settings

log = logging.getLogger(__name__)

EVENT = "notification"
PREFIX = "private-user-"
MAX_CHANNEL = 164
MAX_DATA = 10_240  # bytes of an event's data, Pusher's limit
_PLAIN = re.compile(r"[A-Za-z0-9_\-@,.;]")
_ESCAPED = re.compile(r"(?:[A-Za-z0-9_\-@,.;]|=[0-9A-F]{2})*")
_DIGEST = "=="


def channel_of(user_id: str) -> str:
    """The user's private channel (the encoding is in the module docstring)."""
    name = "".join(char if _PLAIN.fullmatch(char)
                   else "".join(f"={byte:02X}" for byte in char.encode()) for char in user_id)
    if len(PREFIX) + len(name) > MAX_CHANNEL:
        name = _DIGEST + hashlib.sha256(user_id.encode()).hexdigest()
    return PREFIX + name


def user_of(channel: str) -> str | None:
    """The user id a ``channel_of`` channel names; None for a hashed one or another channel."""
    name = channel.removeprefix(PREFIX)
    if name == channel or name.startswith(_DIGEST) or not _ESCAPED.fullmatch(name):
        return None
    raw = bytearray()
    for plain, escaped in re.findall(r"([^=])|=([0-9A-F]{2})", name):
        raw += plain.encode() if plain else bytes.fromhex(escaped)
    try:
        user = raw.decode()
    except UnicodeDecodeError:
        return None
    return user if channel_of(user) == channel else None  # only the one canonical name


class _Refused(Exception):
    """Pusher answered something other than 200 or 202."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:300]}")
        self.status = status


class _Backend(AsyncIOBackend):
    """``AsyncIOBackend`` with one session for all requests (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.session: aiohttp.ClientSession | None = None

    async def send_request(self, request: Any) -> Any:
        if self.session is None:  # made here: aiohttp wants a running loop
            timeout = aiohttp.ClientTimeout(total=self.client.timeout)
            self.session = aiohttp.ClientSession(timeout=timeout)
        async with self.session.request(request.method, request.base_url + request.path,
                                        params=request.query_params, data=request.body,
                                        headers=request.headers) as response:
            body = await response.text("utf-8")
        if response.status in (200, 202):
            return json.loads(body)
        raise _Refused(response.status, body)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class PusherChannels(Provider):
    """Publishes ``{id, title, body, priority, category, data}`` as event ``notification``
    on ``private-user-<id>``; no target, no message id."""

    name = "pusher"
    channel = "pusher"
    kinds = ()

    def __init__(self, app_id: str, key: str, secret: str, cluster: str,
                 url: str | None = None) -> None:
        where: dict[str, Any] = {"cluster": cluster}
        if url:  # only scheme, host and port: the signature covers the path /apps/<id>/...
            parts = urlsplit(url)
            host = parts.hostname or ""
            where = {"host": f"[{host}]" if ":" in host else host, "port": parts.port,
                     "ssl": parts.scheme == "https"}
        self.backends: list[_Backend] = []
        self.client = pusher.Pusher(app_id, key, secret, backend=self._backend, **where)

    @classmethod
    def from_settings(cls, settings: Settings) -> PusherChannels | None:
        """None without ``PUSHER_APP_ID``; config checks the group is complete."""
        if settings.pusher_app_id is None:
            return None
        return cls(settings.pusher_app_id, settings.pusher_key or "",
                   settings.pusher_secret or "", settings.pusher_cluster, settings.pusher_url)

    async def send(self, target: Target | None, note: Note) -> str | None:
        """Trigger the event; Pusher answers ``{}``, so there is no id to return."""
        try:
            data = json.dumps({"id": note.id, "title": note.title, "body": note.body,
                               "priority": note.priority, "category": note.category,
                               "data": note.data}, ensure_ascii=False, separators=(",", ":"))
            size = len(data.encode())
        except (TypeError, ValueError) as err:
            raise ProviderError(f"notification data is not JSON: {err}",
                                code="pusher data") from err
        if size > MAX_DATA:
            raise ProviderError(f"event data is {size} bytes, Pusher takes {MAX_DATA}",
                                code="pusher 413")
        channel = channel_of(note.user_id)
        try:
            await self.client.trigger(channel, EVENT, data)
        except _Refused as err:
            raise classify(err) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise ProviderError(f"Pusher unreachable: {err!r}", retryable=True,
                                code="pusher transport") from err
        log.debug("pusher took notification %s on %s", note.id, channel)
        return None

    async def aclose(self) -> None:
        """Close the pooled sessions."""
        for backend in self.backends:
            await backend.close()

    def _backend(self, client: Any) -> _Backend:
        """``Pusher`` makes a backend for each of its inner clients (events, and user
        authentication); kept here to be closed."""
        backend = _Backend(client)
        self.backends.append(backend)
        return backend


def classify(err: _Refused) -> ProviderError:
    """Pusher's status as retry or permanent: 429 and 5xx pass; 401 and 403 (wrong key or
    secret, app disabled, over quota), 413 and other 4xx do not."""
    message = f"Pusher refused the event: {err}"
    code = f"pusher {err.status}"
    if err.status == 429 or err.status >= 500:
        return ProviderError(message, retryable=True, code=code)
    return ProviderError(message, code=code)
