"""TLS on the hub's own WebSocket port: one server context per replica, re-read on change.

TLS 1.2 and 1.3 only; TLS 1.2 with forward-secret AEAD suites only (OpenSSL's TLS 1.3 suites
are all of that kind). A certificate replaced on disk is loaded into the same context by
``refresh`` (the replica calls it every few seconds): handshakes from then on present the new
one, and sockets already open keep the session they have. A half-written pair (a key that
does not match yet) is not loaded: the current certificate stays until the pair is whole.
"""

from __future__ import annotations

import logging
import os
import ssl

log = logging.getLogger(__name__)

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # TLS 1.2; forward secret, authenticated encryption
CHECK_EVERY_S = 2.0  # how often a replica looks at the files


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context holding ``cert`` (PEM chain) and ``key``; raises ``ssl.SSLError`` or
    ``OSError`` when they cannot be loaded or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(cert, key)
    return context


class ServerTLS:
    """The context a replica serves with, and the files it came from."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self._seen = self._stamp()
        self.context = server_context(cert, key)

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns)
                     for s in (os.stat(self.cert), os.stat(self.key)))

    def refresh(self) -> bool:
        """Load the files again if either changed; True when a new certificate is in use."""
        try:
            stamp = self._stamp()
        except OSError as err:
            log.warning("TLS files unreadable, keeping the current certificate: %s", err)
            return False
        if stamp == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as err:  # tried again at the next look
            log.warning("TLS files changed but do not load yet, keeping the current "
                        "certificate: %s", err)
            return False
        self._seen = stamp
        log.info("TLS certificate reloaded from %s", self.cert)
        return True
