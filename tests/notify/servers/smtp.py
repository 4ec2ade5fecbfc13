"""An SMTP submission server (``aiosmtpd``) on 127.0.0.1, on the test's own event loop: it
offers STARTTLS with a certificate made here (``cluster.devcert``), offers AUTH (PLAIN, LOGIN)
only once the session is encrypted unless told otherwise, as real servers do, refuses MAIL
before a successful AUTH, and keeps every message it accepts, parsed. ``implicit_tls`` serves
TLS from the first byte instead (``smtps://``).

Scripted answers: ``unknown`` recipients get ``550 5.1.1``; ``fail_next(command, reply)``
answers the next MAIL, RCPT or DATA with ``reply`` once (a ``421`` also closes the
connection, as RFC 5321 3.8 says a server does).
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from cluster.devcert import self_signed


@dataclass
class Mail:
    """A message the server accepted."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or smtps) when it was sent
    user: str | None  # who authenticated


class MailServer:
    """``async with MailServer(tmp_path) as server:``; ``server.url()`` is an
    ``RTHUB_SMTP_URL`` that reaches it with the right credentials."""

    def __init__(self, folder: Path, *, username: str = "hub", password: str = "s3cret pw",
                 tls: bool = True, implicit_tls: bool = False,
                 auth_require_tls: bool = True) -> None:
        self.folder = folder
        self.username, self.password = username, password
        self.tls = tls  # STARTTLS offered and required before MAIL
        self.implicit_tls = implicit_tls  # TLS from the first byte (smtps://, port 465)
        self.auth_require_tls = auth_require_tls
        self.ca: str | None = None  # the certificate to trust, once started
        self.port = 0
        self.messages: list[Mail] = []
        self.unknown: set[str] = set()  # recipients answered 550 5.1.1
        self.auth_failures = 0
        self._scripted: dict[str, list[str]] = {"MAIL": [], "RCPT": [], "DATA": []}
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTPProtocol] = []

    def url(self, *, username: str | None = None, password: str | None = None,
            starttls: bool = True, ca: bool = True) -> str:
        """``smtp://user:password@127.0.0.1:port?...``, the server's own credentials unless
        others are given."""
        user = quote(username or self.username, safe="")
        secret = quote(password or self.password, safe="")
        query = [] if starttls or self.implicit_tls else ["starttls=false"]
        if ca and self.ca:
            query.append(f"ca={self.ca}")
        tail = f"?{'&'.join(query)}" if query else ""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{user}:{secret}@127.0.0.1:{self.port}{tail}"

    def fail_next(self, command: str, reply: str) -> None:
        """Answer the next ``command`` (MAIL, RCPT or DATA) with ``reply``, once."""
        self._scripted[command].append(reply)

    async def __aenter__(self) -> MailServer:
        context = None
        if self.tls or self.implicit_tls:
            cert, key, _ = self_signed(self.folder, f"smtp-{uuid.uuid4().hex[:8]}", "localhost")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.ca = cert
        loop = asyncio.get_running_loop()

        def session() -> SMTPProtocol:
            starttls = None if self.implicit_tls else context
            protocol = SMTPProtocol(self, hostname="localhost", tls_context=starttls,
                                    require_starttls=self.tls and not self.implicit_tls,
                                    # aiosmtpd only counts STARTTLS as TLS
                                    auth_require_tls=self.auth_require_tls
                                    and not self.implicit_tls,
                                    authenticator=self._authenticate, timeout=30, loop=loop)
            self._sessions.append(protocol)
            return protocol

        # create_server returns once the socket listens: the server is ready then.
        self._server = await loop.create_server(
            session, "127.0.0.1", 0, ssl=context if self.implicit_tls else None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for protocol in self._sessions:
            if protocol.transport is not None:
                protocol.transport.close()
        await self._server.wait_closed()

    def _authenticate(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        login = cast(LoginPassword, auth_data)
        ok = (login.login.decode(), login.password.decode()) == (self.username, self.password)
        self.auth_failures += not ok
        return AuthResult(success=ok, handled=False, auth_data=login.login.decode())

    def _next(self, command: str, server: SMTPProtocol) -> str | None:
        if not self._scripted[command]:
            return None
        reply = self._scripted[command].pop(0)
        if reply.startswith("421") and server.transport is not None:
            # after the reply is written: push() writes before it next yields
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply

    async def handle_MAIL(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        if reply := self._next("MAIL", server):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if reply := self._next("RCPT", server):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session,
                          envelope: Envelope) -> str:
        if reply := self._next("DATA", server):
            return reply
        content = envelope.original_content or b""
        message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(content))
        tls = server.transport is not None and bool(server.transport.get_extra_info("sslcontext"))
        self.messages.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message,
                                  tls, cast(str | None, session.auth_data)))
        return f"250 2.0.0 OK queued as {uuid.uuid4().hex[:10]}"
