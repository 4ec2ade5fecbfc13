"""The wire protocol v1 envelope, sans I/O: bytes or text in, a checked envelope out, and back.

PROTOCOL.md "Envelope": every frame both ways is one object with ``type`` and optional ``id``,
``ref``, ``topic``, ``seq``, ``epoch``, ``content``, ``timestamp``. JSON text frames by default;
msgpack binary frames under the ``rthub.msgpack.v1`` subprotocol.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson

from rthub.errors import BadRequest, TooLarge

JSON = "rthub.json.v1"
MSGPACK = "rthub.msgpack.v1"
SUBPROTOCOLS = (MSGPACK, JSON)

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_CLIENT_FIELDS = {"type", "id", "topic", "content", "timestamp"}
INT64 = (-(2**63), 2**63 - 1)
# What may hide a NUL or an integer past 64 bits (both decoders yield up to 2**64 - 1):
# only frames with one of these are walked.
_JSON_SUSPECT = re.compile(rb"\\u0000|\d{19}")


def choose_subprotocol(header: str) -> str | None:
    """The subprotocol to accept from a ``Sec-WebSocket-Protocol`` header: the first of ours
    the client offered (None: plain JSON)."""
    for name in header.split(","):
        if name.strip() in SUBPROTOCOLS:
            return name.strip()
    return None


def decode(data: str | bytes, encoding: str, max_bytes: int) -> dict[str, Any]:
    """A client frame as a checked envelope; ``BadRequest`` / ``TooLarge`` say what is wrong."""
    size = len(data) if isinstance(data, bytes) else len(data.encode())
    if size > max_bytes:
        raise TooLarge(f"frame of {size} bytes is over the {max_bytes}-byte limit")
    try:
        if encoding == MSGPACK:
            if not isinstance(data, bytes):
                raise BadRequest("this connection speaks msgpack: send binary frames")
            frame = msgpack.unpackb(data, raw=False, strict_map_key=True)
        else:
            frame = orjson.loads(data)
    except BadRequest:
        raise
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            TypeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"frame is not valid {'msgpack' if encoding == MSGPACK else 'JSON'}: "
                         f"{str(exc)[:80]}") from None
    try:
        frame = check(frame)
        if encoding == MSGPACK or _JSON_SUSPECT.search(
                data if isinstance(data, bytes) else data.encode()):
            storable(frame)
        return frame
    except BadRequest as err:  # parsed: the error can still name the frame it answers
        ident = frame.get("id") if isinstance(frame, dict) else None
        err.ref = ident if isinstance(ident, str | int) and len(str(ident)) <= 64 else None
        raise


def check(frame: Any) -> dict[str, Any]:
    """Validate envelope fields; unknown fields are refused so typos surface."""
    if not isinstance(frame, dict):
        raise BadRequest("a frame must be an object with a 'type'")
    kind = frame.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind) or len(kind) > 64:
        raise BadRequest("'type' must be a dotted lowercase name such as 'chat.send'")
    unknown = set(frame) - _CLIENT_FIELDS
    if unknown:  # msgpack keys may be str or bytes: sorted by repr
        raise BadRequest(f"unknown envelope field {min(unknown, key=repr)!r}")
    ident = frame.get("id")
    if ident is not None and not (isinstance(ident, str | int) and not isinstance(ident, bool)
                                  and len(str(ident)) <= 64):
        raise BadRequest("'id' must be a string or integer of at most 64 characters")
    topic = frame.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise BadRequest("'topic' must be a string")
    content = frame.get("content", {})
    if not isinstance(content, dict):
        raise BadRequest("'content' must be an object")
    frame["content"] = content
    return frame


def storable(value: Any) -> Any:
    """``value``, or ``bad_request`` for what would fail later: text with NUL and integers
    past bigint (PostgreSQL refuses them), and in msgpack what JSON cannot carry (bin, ext,
    non-string keys), which would reach JSON clients in broadcasts. The HTTP API checks its
    JSON bodies and parameters with it too."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest("text may not contain NUL (U+0000)")
        elif isinstance(item, bool | float) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise BadRequest(f"integer {item} is outside the 64-bit signed range")
        elif isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise BadRequest("object keys must be strings")
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            raise BadRequest(f"{type(item).__name__} values are not allowed (use what JSON "
                             "can carry)")
    return value


def encode_bytes(envelope: dict[str, Any], encoding: str) -> bytes:
    """A server frame's payload in ``encoding``: msgpack, or compact UTF-8 JSON."""
    if encoding == MSGPACK:
        return msgpack.packb(envelope, use_bin_type=True)
    try:
        return orjson.dumps(envelope)
    except TypeError:  # what orjson cannot write (an integer over 64 bits): the slow way
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def encode(envelope: dict[str, Any], encoding: str) -> str | bytes:
    """A server frame in the connection's encoding (text for JSON, bytes for msgpack)."""
    data = encode_bytes(envelope, encoding)
    return data if encoding == MSGPACK else data.decode()


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def timestamp(ms: int | None = None) -> str:
    """RFC 3339 UTC with milliseconds (on every frame: the second's text is reused)."""
    whole, milli = divmod(int(time.time() * 1000) if ms is None else int(ms), 1000)
    if whole != _second[0]:
        moment = datetime.fromtimestamp(whole, UTC)
        _second[0], _second[1] = whole, moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{milli:03d}Z"


def answer(frame_id: Any, content: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    """An ``ack`` (or, with ``ok=False``, an ``error``) to the frame ``frame_id``."""
    envelope: dict[str, Any] = {"type": "ack" if ok else "error", "content": content}
    if frame_id is not None:
        envelope["ref"] = frame_id
    return envelope
