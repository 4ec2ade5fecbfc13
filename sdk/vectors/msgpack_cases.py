"""Vectors for the SDKs' msgpack (subprotocol ``rthub.msgpack.v1``): bytes as the hub's own
codec (``msgpack`` for Python, ``serve/protocol.py``) writes and reads them.

Each case has ``hex`` and ``value`` in JSON, with ``{"$bigint": "..."}`` for an integer past
2^53 and ``{"$bin": "<hex>"}`` for binary. ``encode`` says the JavaScript encoder must write
exactly these bytes (false where JavaScript cannot tell, e.g. the float 2.0 is the integer 2,
or where the bytes come from another encoder's choice); ``invalid`` cases must be refused.
"""

from __future__ import annotations

from typing import Any

import msgpack

BIG = 2**53


def _json(value: Any) -> Any:
    """``value`` as the vector file writes it."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and abs(value) >= BIG:
        return {"$bigint": str(value)}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


ROUND_TRIP: list[tuple[str, Any]] = [
    ("nil", None), ("true", True), ("false", False),
    ("positive fixint", 0), ("positive fixint, last", 127), ("uint8", 128), ("uint8, last", 255),
    ("uint16", 256), ("uint16, last", 65535), ("uint32", 65536), ("uint32, last", 2**32 - 1),
    ("uint64", 2**32), ("uint64, last safe integer", BIG - 1), ("uint64, 2^53 (a bigint)", BIG),
    ("uint64, last", 2**64 - 1),
    ("negative fixint", -1), ("negative fixint, last", -32), ("int8", -33),
    ("int8, last", -128), ("int16", -129), ("int16, last", -32768), ("int32", -32769),
    ("int32, last", -(2**31)), ("int64", -(2**31) - 1), ("int64, first safe integer", -BIG + 1),
    ("int64, last", -(2**63)),
    ("float64", 1.5), ("float64, negative", -0.25), ("float64, large", 1e300),
    ("fixstr, empty", ""), ("fixstr", "a"), ("fixstr, 31 bytes", "x" * 31),
    ("str8", "y" * 32), ("str8, 255 bytes", "z" * 255), ("str16", "w" * 256),
    ("fixstr, multibyte UTF-8", "é🎵"),
    ("fixarray, empty", []), ("fixarray, nested", [1, [2, [3, "x"]]]),
    ("array16", list(range(16))), ("fixmap, empty", {}),
    ("fixmap", {"a": 1, "b": [True, None]}), ("map16", {f"k{i:02}": i for i in range(16)}),
    ("bin8, empty", b""), ("bin8", b"\x00\xff\x10"), ("bin16", bytes(range(256)) * 2),
    ("a chat.send frame", {"type": "chat.send", "id": 7, "content": {
        "room": "r1", "text": "salut 🎶", "client_msg_id": "c-1"}}),
    ("a chat.message event", {"type": "chat.message", "topic": "room:r1", "seq": 42,
                              "epoch": "e1", "content": {"id": "m1", "user": "ana",
                                                         "text": "ok", "ts": 1_700_000_000_000}}),
]

# bytes another encoder may write: JavaScript reads them, and need not write them
DECODE_ONLY: list[tuple[str, str, Any]] = [
    ("float32", "ca3fc00000", 1.5),
    ("uint16 holding a small number", "cd0005", 5),
    ("int64 holding a small number", "d3ffffffffffffffff", -1),
    ("str16 holding a short string", "da0002" + b"hi".hex(), "hi"),
    ("map16 holding one entry", "de0001" + msgpack.packb("a").hex() + "01", {"a": 1}),
    ("float64 holding an integral value", msgpack.packb(2.0).hex(), 2),
]

INVALID: list[tuple[str, str]] = [
    ("an ext type (fixext1)", "d40100"),
    ("the never-used byte 0xc1", "c1"),
    ("a map with an integer key", msgpack.packb({1: 2}).hex()),
    ("a truncated str8", "d905616263"),
    ("a truncated array", "93010203"[:-2]),
    ("bytes after the value", "c0c0"),
    ("a string that is not UTF-8", "a2c328"),
]


def _sorted(value: Any) -> Any:
    """Maps with their keys in order: the vector file sorts keys, and a map's bytes follow
    its order."""
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    return value


def msgpack_vectors() -> dict[str, Any]:
    cases = []
    for name, value in ROUND_TRIP:
        value = _sorted(value)
        data = msgpack.packb(value, use_bin_type=True)
        assert msgpack.unpackb(data, raw=False) == value
        cases.append({"name": name, "hex": data.hex(), "value": _json(value), "encode": True})
    for name, data_hex, value in DECODE_ONLY:
        assert msgpack.unpackb(bytes.fromhex(data_hex), raw=False) == value
        cases.append({"name": name, "hex": data_hex, "value": _json(value), "encode": False})
    invalid = []
    for name, data_hex in INVALID:
        try:
            msgpack.unpackb(bytes.fromhex(data_hex), raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError):
            invalid.append({"name": name, "hex": data_hex})
        else:
            if name.startswith("an ext"):  # msgpack reads ext as ExtType: the hub refuses it
                invalid.append({"name": name, "hex": data_hex})
            else:
                raise AssertionError(f"{name}: msgpack read it")
    return {"about": "msgpack as the hub's codec writes and reads it; regenerate: "
                     "python -m sdk.vectors.generate", "cases": cases, "invalid": invalid}
