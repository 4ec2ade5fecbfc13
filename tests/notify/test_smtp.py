"""The SMTP adapter against a local submission server: the message arrives over STARTTLS after
AUTH with its headers and both bodies, each reply of the server is classified as the
dispatcher needs it, and ``RTHUB_SMTP_URL`` is read strictly."""

from __future__ import annotations

import socket

import pytest

from notify.providers.base import Note, ProviderError, Target
from notify.providers.smtp import SMTP, by_reply, parse_url
from rthub import config
from rthub.errors import ConfigError
from tests.notify.servers.smtp import MailServer

SENDER = "hub@example.com"
ANA = Target("email", "ana@example.com")


def smtp_for(url: str) -> SMTP:
    provider = SMTP.from_settings(config.load({"RTHUB_SMTP_URL": url,
                                               "RTHUB_SMTP_FROM": SENDER}))
    assert provider is not None
    return provider


def note(ident: str = "Xy_12-ab") -> Note:
    return Note(id=ident, tenant="acme", user_id="ana", title="Road Trip <updated>",
                body="Tom added 3 tracks & a cover.\n\nOpen the app to listen.",
                priority=1, category="social")


def verdict(err: ProviderError) -> tuple[str, str | None]:
    """What the dispatcher will do with it, and the code it records."""
    assert not (err.retryable and err.dead_target)
    kind = "retry" if err.retryable else "dead" if err.dead_target else "permanent"
    return kind, err.code


async def refused(provider: SMTP, target: Target = ANA) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.send(target, note())
    return caught.value


@pytest.fixture
async def server(tmp_path):
    async with MailServer(tmp_path) as server:
        yield server


@pytest.fixture
async def plain_server(tmp_path):
    async with MailServer(tmp_path, tls=False, auth_require_tls=False) as server:
        yield server


async def test_the_message_arrives_over_starttls_after_auth(server):
    message_id = await smtp_for(server.url()).send(ANA, note())

    [mail] = server.messages
    assert (mail.tls, mail.user) == (True, "hub")
    assert (mail.sender, mail.recipients) == (SENDER, ["ana@example.com"])
    headers = mail.message
    assert headers["Subject"] == "Road Trip <updated>"
    assert (headers["From"], headers["To"]) == (SENDER, "ana@example.com")
    assert headers["Message-ID"] == message_id == "<rthub.acme.Xy_12-ab@example.com>"
    assert headers["X-Rthub-Notification"] == "Xy_12-ab"
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["Date"] is not None
    assert headers.get_content_type() == "multipart/alternative"
    text = headers.get_body(("plain",)).get_content()
    page = headers.get_body(("html",)).get_content()
    assert "Tom added 3 tracks & a cover." in text
    assert "<h1>Road Trip &lt;updated&gt;</h1>" in page
    assert "<p>Tom added 3 tracks &amp; a cover.</p>" in page


async def test_a_resend_carries_the_same_message_id(server):
    provider = smtp_for(server.url())
    await provider.send(ANA, note())
    await provider.send(ANA, note())
    await provider.send(ANA, note("other"))
    ids = [m.message["Message-ID"] for m in server.messages]
    assert ids[0] == ids[1] != ids[2]


async def test_plain_smtp_when_starttls_is_turned_off(plain_server):
    await smtp_for(plain_server.url(starttls=False)).send(ANA, note())
    [mail] = plain_server.messages
    assert (mail.tls, mail.user) == (False, "hub")


async def test_smtps_is_tls_from_the_first_byte(tmp_path):
    async with MailServer(tmp_path, implicit_tls=True) as server:
        await smtp_for(server.url()).send(ANA, note())
        err = await refused(smtp_for(server.url(ca=False)))
    assert verdict(err) == ("permanent", "smtp tls")
    [mail] = server.messages
    assert (mail.tls, mail.user) == (True, "hub")


async def test_starttls_is_required_unless_turned_off(plain_server):
    err = await refused(smtp_for(plain_server.url()))
    assert verdict(err) == ("permanent", "smtp unsupported")
    assert plain_server.messages == []


async def test_a_server_offers_auth_only_after_starttls(server):
    err = await refused(smtp_for(server.url(starttls=False)))
    assert verdict(err) == ("permanent", "smtp unsupported")
    assert server.auth_failures == 0


async def test_a_wrong_password_is_permanent(server):
    err = await refused(smtp_for(server.url(password="wrong")))
    assert verdict(err) == ("permanent", "smtp 535")
    assert server.auth_failures >= 1


async def test_an_unknown_mailbox_is_a_dead_target(server):
    server.unknown.add("ana@example.com")
    err = await refused(smtp_for(server.url()))
    assert verdict(err) == ("dead", "smtp 550")


async def test_a_policy_rejection_is_permanent_but_the_address_lives(server):
    server.fail_next("RCPT", "550 5.7.1 Message rejected by policy")
    err = await refused(smtp_for(server.url()))
    assert verdict(err) == ("permanent", "smtp 550")


async def test_a_temporary_failure_is_retried(server):
    provider = smtp_for(server.url())
    server.fail_next("DATA", "451 4.3.0 Temporary failure, try again")
    err = await refused(provider)
    assert verdict(err) == ("retry", "smtp 451")
    await provider.send(ANA, note())  # one-off
    assert len(server.messages) == 1


async def test_a_server_closing_with_421_is_retried(server):
    provider = smtp_for(server.url())
    server.fail_next("MAIL", "421 4.3.2 Service shutting down")
    err = await refused(provider)
    assert verdict(err) == ("retry", "smtp 421")
    await provider.send(ANA, note())
    assert len(server.messages) == 1


async def test_a_server_that_is_down_is_retried():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = await refused(smtp_for(f"smtp://hub:pw@127.0.0.1:{port}"))
    assert verdict(err) == ("retry", "smtp connection")


async def test_an_untrusted_certificate_is_permanent(server):
    err = await refused(smtp_for(server.url(ca=False)))
    assert verdict(err) == ("permanent", "smtp tls")
    assert server.messages == []


@pytest.mark.parametrize("address", ["not an address", "ana", "Ana <ana@example.com>",
                                     "ana@example.com\r\nBcc: eve@example.com"])
async def test_a_malformed_address_is_a_dead_target_and_nothing_is_sent(server, address):
    err = await refused(smtp_for(server.url()), Target("email", address))
    assert verdict(err) == ("dead", "smtp bad_address")
    assert server.messages == []


@pytest.mark.parametrize(("code", "text", "expected"), [
    (550, "5.1.1 User unknown", "dead"),
    (550, "Mailbox unavailable", "dead"),
    (553, "5.1.3 Bad recipient address syntax", "dead"),
    (550, "5.7.1 Relaying denied", "permanent"),
    (552, "5.2.2 Mailbox full", "permanent"),
    (450, "4.2.1 Mailbox busy", "retry"),
])
def test_recipient_replies(code, text, expected):
    assert verdict(by_reply(code, text, recipient=True)) == (expected, f"smtp {code}")


def test_unset_url_means_no_email():
    assert SMTP.from_settings(config.load({})) is None


def test_the_url_gives_tls_mode_port_and_credentials(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    relay = parse_url("smtp://user%40corp:p%3Ass@mail.example.com")
    assert (relay.host, relay.port, relay.starttls, relay.implicit_tls) == (
        "mail.example.com", 587, True, False)
    assert (relay.username, relay.password) == ("user@corp", "p:ss")
    assert parse_url("smtps://mail.example.com").port == 465
    assert parse_url("smtps://mail.example.com").starttls is False
    plain = parse_url(f"smtp://relay:2525?starttls=false&ca={ca}")
    assert (plain.port, plain.starttls, plain.username, plain.ca) == (2525, False, None, str(ca))


@pytest.mark.parametrize("url", [
    "smtp://user:hunter2@mail.example.com?starttls=maybe",
    "smtp://user:hunter2@mail.example.com?tls=yes",
    "smtps://user:hunter2@mail.example.com?starttls=true",
    "smtp://user:hunter2@mail.example.com?ca=/no/such/file.pem",
    "smtp://user:hunter2@mail.example.com:99999",
    "smtp://user:hunter2@mail.example.com/path",
])
def test_a_wrong_url_names_the_variable_and_not_the_password(url):
    with pytest.raises(ConfigError, match="RTHUB_SMTP_URL") as caught:
        parse_url(url)
    assert "hunter2" not in str(caught.value)
