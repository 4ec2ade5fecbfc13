"""The RTHUB_ENCRYPTION_KEYS format, ``id:base64key[,id:base64key...]``, parsed and checked.

Here, below everything, so the configuration can reject a bad value at start without
importing storage; ``storage.crypto.Keyring`` builds its ciphers from what this returns.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

from rthub.errors import ConfigError

KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def check_keys(keys: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The keys, in order (the first seals); ``ConfigError`` naming the first bad one."""
    checked: dict[str, bytes] = {}
    for key_id, key in keys:
        if not _KEY_ID.match(key_id):
            raise ConfigError(f"encryption key id {key_id!r}: use 1 to 32 letters, digits "
                              "or '_.-'")
        if len(key) != KEY_BYTES:
            raise ConfigError(f"encryption key {key_id!r} is {len(key)} bytes; AES-256 "
                              "needs 32")
        if key_id in checked:
            raise ConfigError(f"encryption key id {key_id!r} is configured twice")
        checked[key_id] = key
    if not checked:
        raise ConfigError("no encryption key configured")
    return list(checked.items())


def parse_keys(raw: str) -> list[tuple[str, bytes]]:
    """``id:base64key[,id:base64key...]`` as checked (id, key) pairs."""
    keys = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep:
            raise ConfigError("each encryption key is id:base64 (32 bytes)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ConfigError(f"encryption key {key_id!r} is not base64") from None
        keys.append((key_id, key))
    return check_keys(keys)
