"""Encryption at rest: AES-256-GCM with named keys, so keys can be rotated.

Every sealed value is stored beside the id of the key that sealed it. New values use the
*active* key (the first one configured); any configured key opens what it sealed, so rows
written before a rotation stay readable until ``rthub keys rotate`` re-seals them.

Each value is bound to where it lives (``aad``: tenant and row id), so a ciphertext copied
into another row, or another tenant's, does not open.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rthub.errors import ConfigError
from rthub.keys import check_keys, parse_keys

NONCE_BYTES = 12  # GCM's standard nonce; random per value (2^32 values per key is safe)


class SealError(Exception):
    """A value did not open: wrong key, unknown key id, or tampered bytes."""


class Keyring:
    """The configured keys; the first one seals, all of them open."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, AESGCM] = {key_id: AESGCM(key) for key_id, key in check_keys(keys)}
        self.active = next(iter(self._keys))

    @classmethod
    def parse(cls, raw: str) -> Keyring:
        """``id:base64key[,id:base64key...]`` (the RTHUB_ENCRYPTION_KEYS format)."""
        return cls(parse_keys(raw))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext + tag) under the active key."""
        nonce = os.urandom(NONCE_BYTES)
        return self.active, nonce + self._keys[self.active].encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of a value sealed by ``key_id``; ``SealError`` if it does not open."""
        aead = self._keys.get(key_id)
        if aead is None:
            raise SealError(f"key {key_id!r} is not configured (was it removed before "
                            "`rthub keys rotate` finished?)")
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealError(f"a value sealed by key {key_id!r} failed authentication") from None

    def seal_text(self, text: str, aad: bytes) -> tuple[str, bytes]:
        return self.seal(text.encode(), aad)

    def open_text(self, key_id: str, sealed: bytes, aad: bytes) -> str:
        return self.open(key_id, sealed, aad).decode()


def keyring(encryption_keys: str | None) -> Keyring:
    """The hub's keyring from RTHUB_ENCRYPTION_KEYS (the launcher fills in a dev key)."""
    if not encryption_keys:
        raise ConfigError("RTHUB_ENCRYPTION_KEYS is not set: chat text and attachments are "
                          "encrypted at rest; `rthub keys generate` makes a key")
    return Keyring.parse(encryption_keys)


def new_key(key_id: str | None = None) -> str:
    """A fresh ``id:base64`` entry for RTHUB_ENCRYPTION_KEYS."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def dev_keys(data_dir: Path) -> str:
    """The key of a dev hub with no RTHUB_ENCRYPTION_KEYS: made once, kept in the data dir."""
    path = data_dir / "dev-encryption-keys"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(new_key("dev"))
        path.chmod(0o600)
    return path.read_text().strip()


def aad(*parts: str) -> bytes:
    """Associated data naming a value's place (tenant, table, row id)."""
    return "\x1f".join(parts).encode()
