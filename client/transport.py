"""One WebSocket to the hub, opened up to its ``session.welcome``, in the encoding asked for."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import websockets
from websockets.exceptions import InvalidStatus

from client.codec import JSON_CODEC, Codec, negotiated

log = logging.getLogger(__name__)

# unauthorized, forbidden, replaced (the session went on another socket, or the user is over
# the hub's per-user cap: coming back would push the next socket out), token revoked
FINAL_CLOSES = frozenset({4401, 4403, 4409, 4410})
TOKEN_EXPIRED = (4401, "token expired")  # final with a static token, not with a provider
FINAL_STATUSES = frozenset({401, 403})  # the upgrade refused for the token or the path


class Refused(Exception):
    """The hub will not take this connection: retrying the same way would not help.
    ``resume_refused``: only its resume token was (spent or unknown): connect afresh."""

    def __init__(self, code: int | None, reason: str, resume_refused: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.resume_refused = resume_refused


async def open_socket(url: str, token: str, resume: str | None, timeout_s: float,
                      codec: Codec = JSON_CODEC) -> tuple[Any, dict[str, Any], Codec]:
    """A socket, its welcome frame and the codec it speaks; ``resume`` resumes that session.
    Raises ``Refused``, or the connection's own errors (``OSError``, ``TimeoutError``,
    websockets') for a retry."""
    if resume is not None:
        url = f"{url}{'&' if '?' in url else '?'}resume={resume}"
    try:
        ws = await websockets.connect(url, additional_headers={
            "Authorization": f"Bearer {token}"}, open_timeout=timeout_s,
            ping_interval=None, max_size=2**24,  # liveness is the protocol's heartbeat
            subprotocols=[codec.subprotocol])
    except InvalidStatus as refused:
        status = refused.response.status_code
        if status in FINAL_STATUSES:
            raise Refused(status, f"HTTP {status}: {refused.response.body!r:.200}") from None
        raise
    try:
        async with asyncio.timeout(timeout_s):
            wire = negotiated(codec, ws.subprotocol)
            frame = wire.decode(await ws.recv())
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        reason = closed.rcvd.reason if closed.rcvd else ""
        if code == 4403 and resume is not None:  # before any welcome: the resume token
            raise Refused(code, reason, resume_refused=True) from None
        if code in FINAL_CLOSES:
            raise Refused(code, reason) from None
        raise
    except BaseException:
        ws.transport.abort()
        raise
    if not isinstance(frame, dict) or frame.get("type") != "session.welcome":
        ws.transport.abort()
        raise websockets.InvalidHandshake(f"the first frame was not a welcome: {frame!r:.80}")
    return ws, frame, wire
