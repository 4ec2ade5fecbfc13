"""How frames travel (PROTOCOL.md "Encoding"): JSON text frames, or msgpack binary frames
under subprotocol ``rthub.msgpack.v1``, smaller and cheaper to parse. msgpack is optional
(``pip install 'rthub-client[msgpack]'``); the hub answers in the encoding the socket chose."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = "rthub.json.v1"
MSGPACK = "rthub.msgpack.v1"


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    subprotocol: str
    encode: Callable[[dict[str, Any]], str | bytes]
    decode: Callable[[str | bytes], Any]


JSON_CODEC = Codec("json", JSON, json.dumps, json.loads)


def _msgpack_codec() -> Codec:
    try:
        import msgpack
    except ImportError:
        raise ValueError("encoding='msgpack' needs the msgpack package: "
                         "pip install 'rthub-client[msgpack]'") from None

    def decode(data: str | bytes) -> Any:
        if isinstance(data, str):
            raise ValueError("a text frame on a msgpack socket")
        return msgpack.unpackb(data, raw=False, strict_map_key=True)

    return Codec("msgpack", MSGPACK, lambda frame: msgpack.packb(frame, use_bin_type=True),
                 decode)


def codec_for(encoding: str) -> Codec:
    """The codec named ``encoding`` (``json`` or ``msgpack``); ``ValueError`` otherwise."""
    if encoding == "json":
        return JSON_CODEC
    if encoding == "msgpack":
        return _msgpack_codec()
    raise ValueError(f"encoding must be 'json' or 'msgpack', not {encoding!r}")


def negotiated(asked: Codec, subprotocol: str | None) -> Codec:
    """What a socket speaks: the codec asked for, unless the hub chose no subprotocol (an
    older hub), which means JSON."""
    return asked if subprotocol == asked.subprotocol else JSON_CODEC
