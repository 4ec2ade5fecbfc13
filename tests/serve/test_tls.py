"""wss:// on the replica's own port: a verified handshake, TLS 1.2+ with forward secrecy only,
a wrong host name refused by the client, and a certificate replaced on disk without a restart."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import websockets

from serve.tls import CHECK_EVERY_S
from tests.certs import self_signed, serial_of
from tests.serve.client import Client
from tests.serve.conftest import DIRECT_INGRESS

pytestmark = pytest.mark.skipif(not DIRECT_INGRESS, reason="TLS is the replica's own port's")


def trusting(*certs: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs[0])
    for cert in certs[1:]:
        context.load_verify_locations(cafile=cert)
    return context


def peer_serial(client: Client) -> int:
    der = client.ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return serial_of(der)


async def tls_hub(deploy, tmp_path):
    cert, key, serial = self_signed(tmp_path)
    _, hub = await deploy(RTHUB_TLS_CERT=cert, RTHUB_TLS_KEY=key)
    return hub, f"wss://localhost:{hub.settings.ws_port}/ws", cert, key, serial


async def test_wss_is_served_with_tls_12_or_13_and_forward_secret_suites_only(deploy, tmp_path):
    hub, url, cert, _, serial = await tls_hub(deploy, tmp_path)
    alice = await Client.connect(url, hub.token("alice"), ssl=trusting(cert))
    assert alice.welcome["type"] == "session.welcome"
    assert peer_serial(alice) == serial
    tls = alice.ws.transport.get_extra_info("ssl_object")
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    pong = await alice.send("time.ping", {"t0": 1})
    assert (await alice.expect_ref(pong))["type"] == "time.pong"

    static_rsa = trusting(cert)  # a TLS 1.2 client offering only a suite without ECDHE
    static_rsa.maximum_version = ssl.TLSVersion.TLSv1_2
    static_rsa.set_ciphers("AES128-GCM-SHA256")
    with pytest.raises((ssl.SSLError, ConnectionError)):  # an alert, or the handshake cut
        await websockets.connect(url, ssl=static_rsa, open_timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match"):
        await websockets.connect(url, ssl=trusting(cert), server_hostname="wrong.example",
                                 open_timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):  # a certificate it was not told to trust
        await websockets.connect(url, ssl=ssl.create_default_context(), open_timeout=10)
    assert (await alice.expect_ref(await alice.send("time.ping", {"t0": 2})))["type"] \
        == "time.pong"  # the refused handshakes cost the open socket nothing
    await alice.close()


async def test_a_certificate_replaced_on_disk_serves_new_sockets_and_open_ones_stay(
        deploy, tmp_path):
    hub, url, cert, _, first = await tls_hub(deploy, tmp_path)
    old = await Client.connect(url, hub.token("old"), ssl=trusting(cert))
    keep = tmp_path / "first.pem"
    keep.write_bytes((tmp_path / "hub.pem").read_bytes())
    _, _, second = self_signed(tmp_path)  # the same two paths, replaced
    both = trusting(str(keep), cert)
    async with asyncio.timeout(CHECK_EVERY_S * 30):  # 60 s: handshakes are slow under load
        while True:  # polled: the replica looks at the files every CHECK_EVERY_S
            new = await Client.connect(url, hub.token("new"), ssl=both)
            serial = peer_serial(new)
            if serial == second:
                break
            assert serial == first
            await new.close()
            await asyncio.sleep(0.2)
    assert peer_serial(old) == first  # the open socket keeps its session and works
    assert (await old.expect_ref(await old.send("time.ping", {"t0": 1})))["type"] == "time.pong"
    await new.close()
    await old.close()
