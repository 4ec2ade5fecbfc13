"""Content type by the bytes, never by the client's claim.

A client names its upload ``cat.png``; what decides is the file's own magic numbers.
Executables and scripts are recognised here first (ELF, PE/DOS, Mach-O, ``#!``) and are never
accepted, whatever the allowed list says; other formats come from ``filetype``'s signatures,
and valid UTF-8 without NUL bytes is ``text/plain``.
"""

from __future__ import annotations

import logging

import filetype

log = logging.getLogger(__name__)

EXECUTABLE = "application/x-executable"

_EXECUTABLE_MAGICS: tuple[bytes, ...] = (
    b"\x7fELF",  # ELF (Linux, BSD)
    b"MZ",  # DOS / PE (Windows)
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit, big-endian
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit, big-endian
    b"\xce\xfa\xed\xfe",  # Mach-O 32-bit, little-endian
    b"\xcf\xfa\xed\xfe",  # Mach-O 64-bit, little-endian
    b"\xca\xfe\xba\xbe",  # Mach-O universal (and Java class files)
    b"#!",  # a script with an interpreter line
)


def sniff(data: bytes) -> str | None:
    """The MIME type ``data`` really is, or None when its bytes do not say."""
    if not data:
        return None
    if data.startswith(_EXECUTABLE_MAGICS):
        return EXECUTABLE
    kind = filetype.guess(bytes(data))
    if kind is not None:
        return kind.mime
    if b"\x00" not in data:
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


class UnsupportedType(Exception):
    """An upload whose bytes are not one of the allowed types."""

    def __init__(self, message: str, detected: str | None) -> None:
        super().__init__(message)
        self.detected = detected


def check_type(data: bytes, allowed: frozenset[str]) -> str:
    """The sniffed type of ``data`` if ``allowed`` holds it, else UnsupportedType.

    EXECUTABLE is refused even when listed.
    """
    detected = sniff(data)
    if detected is not None and detected != EXECUTABLE and detected in allowed:
        return detected
    listed = ", ".join(sorted(allowed - {EXECUTABLE})) or "nothing"
    if detected is None:
        message = f"could not tell the file's type from its bytes; allowed: {listed}"
    else:
        message = f"the file is {detected}; allowed: {listed}"
    log.debug("upload refused: %s", message)
    raise UnsupportedType(message, detected)
