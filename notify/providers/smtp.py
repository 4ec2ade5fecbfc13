"""Email through an SMTP relay (``aiosmtplib``): one notification, one message, to one
address.

One connection per send: connect, STARTTLS (or TLS from the first byte), AUTH, one message,
QUIT. A pooled connection would save a handshake per message but must notice a relay that
dropped it while idle (RFC 5321 4.5.3.2.7 lets a server close after 5 minutes) and would
serialise concurrent sends on it; notification email is not the volume where that pays.

``RTHUB_SMTP_URL``: ``smtp://[user:password@]host[:port][?starttls=false][&ca=/path.pem]``.
``smtp://`` requires STARTTLS (port 587) unless ``?starttls=false`` (then plain: a local
relay only, since the password would travel in clear); ``smtps://`` is TLS from the start
(port 465). ``?ca=`` trusts one more CA (a test relay's certificate); otherwise the system's.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import html
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from notify.providers.base import Note, Provider, ProviderError, Target
from rthub.config import Settings
from rthub.errors import ConfigError

log = logging.getLogger(__name__)

DEAD_REPLIES = {550, 551, 553}  # RFC 5321 4.2.3: mailbox unavailable, not local, bad name
ENHANCED = re.compile(r"5\.(\d{1,3})\.\d{1,3}\b")  # RFC 3463 status code in a reply's text
ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # RFC 5322 atext, for Message-ID


@dataclass(frozen=True)
class Relay:
    """``RTHUB_SMTP_URL``, read."""

    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: bool  # smtp:// unless ?starttls=false
    username: str | None
    password: str | None
    ca: str | None


def parse_url(url: str) -> Relay:
    """``ConfigError`` naming RTHUB_SMTP_URL (never echoing the password) when it is wrong."""
    def wrong(why: str) -> ConfigError:
        return ConfigError(f"RTHUB_SMTP_URL: {why} (expected smtp://[user:password@]host"
                           f"[:port][?starttls=false][&ca=/path.pem] or smtps://...)")

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise wrong("the scheme must be smtp or smtps")
    try:
        port = parts.port
    except ValueError:
        raise wrong("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise wrong("no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise wrong("no path or fragment is allowed")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls", "ca"}
    if unknown or any(len(values) > 1 for values in query.values()):
        raise wrong(f"unknown or repeated parameters {sorted(unknown) or sorted(query)}")
    implicit = parts.scheme == "smtps"
    starttls = query.get("starttls", ["true"])[0].lower()
    if starttls not in ("true", "false"):
        raise wrong("starttls must be true or false")
    if implicit and "starttls" in query:
        raise wrong("smtps:// is TLS from the first byte; starttls does not apply")
    ca = query.get("ca", [None])[0]
    if ca is not None and not (os.path.isfile(ca) and os.access(ca, os.R_OK)):
        raise wrong(f"ca={ca} is not a readable file")
    return Relay(host=parts.hostname, port=port or (465 if implicit else 587),
                 implicit_tls=implicit, starttls=not implicit and starttls == "true",
                 username=unquote(parts.username) if parts.username else None,
                 password=unquote(parts.password) if parts.password is not None else None,
                 ca=ca)


class SMTP(Provider):
    """Sends to ``Target(kind="email", address="user@example.com")``; returns the
    Message-ID, which is the same for every send of one notification."""

    name = "smtp"
    channel = "email"
    kinds = ("email",)

    def __init__(self, relay: Relay, sender: str, timeout_s: float = 30.0) -> None:
        self.relay = relay
        self.sender = sender
        self._timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=relay.ca)
        self._domain = sender.rpartition("@")[2] or "localhost"
        self._ehlo_name: str | None = None  # our FQDN, looked up once rather than per send

    @classmethod
    def from_settings(cls, settings: Settings) -> SMTP | None:
        if settings.smtp_url is None:
            return None
        relay = parse_url(settings.smtp_url)
        if relay.username and not (relay.starttls or relay.implicit_tls):
            log.warning("RTHUB_SMTP_URL has starttls=false: the SMTP password goes in clear")
        return cls(relay, settings.smtp_from)

    def message(self, address: str, note: Note) -> EmailMessage:
        """The email for ``note``: plain text and a simple HTML alternative."""
        title, body = " ".join(note.title.split()), note.body
        message = EmailMessage()
        message["Subject"] = title
        message["From"] = self.sender
        message["To"] = address
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = self.message_id(note)
        message["X-Rthub-Notification"] = note.id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
        message.set_content(f"{title}\n\n{body}\n")
        message.add_alternative(_html(title, body), subtype="html")
        return message

    def message_id(self, note: Note) -> str:
        """Derived from the notification, so a resend is recognisable as the same message."""
        return f"<rthub.{_atom(note.tenant)}.{_atom(note.id)}@{self._domain}>"

    async def send(self, target: Target | None, note: Note) -> str | None:
        if target is None:
            raise ProviderError("an email needs an address", code="smtp no_target")
        address = target.address.strip()
        if email.utils.parseaddr(address)[1] != address or "@" not in address:
            raise ProviderError(f"{address!r} is not an email address", dead_target=True,
                                code="smtp bad_address")
        message = self.message(address, note)
        relay = self.relay
        if self._ehlo_name is None:
            self._ehlo_name = await asyncio.to_thread(socket.getfqdn)
        try:
            await aiosmtplib.send(
                message, sender=self.sender, recipients=[address], hostname=relay.host,
                port=relay.port, username=relay.username, password=relay.password,
                use_tls=relay.implicit_tls, start_tls=relay.starttls, tls_context=self._tls,
                local_hostname=self._ehlo_name, timeout=self._timeout_s)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            raise refused(err, relay) from err
        return str(message["Message-ID"])


def refused(err: Exception, relay: Relay) -> ProviderError:
    """What an SMTP failure means for the dispatcher (RFC 5321 4.2.1: 4yz transient, 5yz
    permanent)."""
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused) and err.recipients:
        err = err.recipients[0]  # one recipient per send
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return by_reply(err.code, err.message,
                        recipient=isinstance(err, aiosmtplib.SMTPRecipientRefused))
    where = f"{relay.host}:{relay.port}"
    untrusted = next((e for e in (err, err.__cause__)
                      if isinstance(e, ssl.SSLCertVerificationError)), None)
    if untrusted is not None:  # as is after STARTTLS, wrapped in SMTPConnectError for smtps
        return ProviderError(f"SMTP relay {where}: certificate not trusted "
                             f"({untrusted.verify_message}); RTHUB_SMTP_URL ?ca= names a CA "
                             f"to trust", code="smtp tls")
    if isinstance(err, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPTimeoutError, OSError, TimeoutError)):
        return ProviderError(f"SMTP relay {where} unreachable: {err}", retryable=True,
                             code="smtp connection")
    # SMTPNotSupported and the like: no STARTTLS or AUTH offered, SMTPUTF8 missing
    return ProviderError(f"SMTP relay {where}: {err}", code="smtp unsupported")


def by_reply(code: int, text: str, *, recipient: bool = False) -> ProviderError:
    """A reply code's meaning; a recipient's 550/551/553 with no RFC 3463 status, or a
    5.1.x one (bad mailbox, bad domain), is an address that will never work. A 550 5.7.1
    (policy, spam) is permanent but says nothing about the address."""
    message = f"SMTP {code} {text}".strip()
    if 400 <= code < 500:
        return ProviderError(message, retryable=True, code=f"smtp {code}")
    status = ENHANCED.search(text)
    dead = recipient and code in DEAD_REPLIES and (status is None or status.group(1) == "1")
    return ProviderError(message, dead_target=dead, code=f"smtp {code}")


def _html(title: str, body: str) -> str:
    """A plain page: the title as a heading, blank-line separated paragraphs, all escaped."""
    paragraphs = ["<p>" + "<br>\n".join(html.escape(line) for line in part.splitlines())
                  + "</p>" for part in body.split("\n\n") if part.strip()]
    return "\n".join(["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
                      f"<title>{html.escape(title)}</title></head><body>",
                      f"<h1>{html.escape(title)}</h1>", *paragraphs, "</body></html>", ""])


def _atom(text: str) -> str:
    """``text`` if a Message-ID may hold it as is, else a digest of it."""
    return text if ATOM.fullmatch(text) else hashlib.sha256(text.encode()).hexdigest()[:24]
