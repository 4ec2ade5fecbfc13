"""The gateway's fan-out path, through the real hub (serve.wire, serve.sockets).

Under direct ingress (the default) each event's frame is encoded once per encoding and the
same bytes are written to every socket on the replica's own port; behind Serve's proxy
(RTHUB_TEST_INGRESS=proxy) every frame goes through ASGI ``send``. Either way every member
gets every event in order, and a client that stops reading is closed (4413) without holding
up anyone else.
"""

from __future__ import annotations

import asyncio
import os
import socket
from urllib.parse import urlsplit

import pytest
import websockets

from tests.serve.client import Client, scrape

DIRECT = os.environ.get("RTHUB_TEST_INGRESS", "direct") == "direct"


async def test_json_and_msgpack_members_get_every_event_in_order(deploy):
    url, hub = await deploy()
    owner = await Client.connect(url, hub.token("owner"))
    await owner.ask("room.create", {"room_id": "r", "name": "r"})
    members = [await Client.connect(url, hub.token(f"m{i}"), binary=i % 2 == 1)
               for i in range(4)]
    for member in members:
        await member.ask("room.join", {"room": "r"})
    acks = [await owner.ask("chat.send", {"room": "r", "text": f"t{i}",
                                          "client_msg_id": f"k{i}"}) for i in range(20)]
    for reader in (owner, *members):
        got = [await reader.expect("chat.message", topic="room:r") for _ in range(20)]
        assert [(f["seq"], f["content"]["text"]) for f in got] == [
            (ack["seq"], f"t{i}") for i, ack in enumerate(acks)]
    metrics = await scrape(hub.operator)
    others = sum(1 for c in (owner, *members) for f in c.inbox if f.get("topic") == "room:r")
    assert metrics["rthub_deliveries_total"] == 5 * 20 + others  # joins seen, chat messages
    for client in (owner, *members):
        await client.close()


async def reader_that_stalls(url: str, token: str) -> websockets.ClientConnection:
    """A client whose kernel receive window is tiny and which reads nothing until told to."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await asyncio.to_thread(sock.connect, (parts.hostname, parts.port))
    sock.setblocking(False)
    return await websockets.connect(url, sock=sock, max_queue=1, open_timeout=20,
                                    additional_headers={"Authorization": f"Bearer {token}"})


async def drained_close_code(ws: websockets.ClientConnection) -> int | None:
    """Read everything left, then the close frame's code."""
    async with asyncio.timeout(30):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.skipif(not DIRECT, reason="behind Serve's proxy the proxy absorbs a slow client")
async def test_a_client_that_stops_reading_is_closed_4413_and_the_room_carries_on(deploy):
    url, hub = await deploy(RTHUB_SEND_BUFFER_BYTES="65536")
    owner = await Client.connect(url, hub.token("owner"))
    await owner.ask("room.create", {"room_id": "big", "name": "big"})
    ids = {await owner.send("chat.send", {"room": "big", "text": "x" * 3900,
                                          "client_msg_id": f"k{i}"}) for i in range(100)}
    while ids:  # the acks; the broadcasts go to the inbox
        frame = await owner.recv()
        if frame.get("ref") in ids:
            assert frame["type"] == "ack", frame
            ids.discard(frame["ref"])
        else:
            owner.inbox.append(frame)
    stalled = await reader_that_stalls(url, hub.token("slow"))
    await stalled.recv()  # the welcome
    await stalled.send('{"type":"room.join","id":1,"content":{"room":"big"}}')
    assert '"ref":1' in await stalled.recv()
    # from here on it reads nothing, and asks for ~40 MB of history (kernel buffers on the
    # way hold several MB before the gateway sees any back-pressure)
    for i in range(100):
        await stalled.send(f'{{"type":"chat.history","id":{i + 2},'
                           '"content":{"room":"big","limit":100}}')
    async with asyncio.timeout(60):  # the metric is the only outside view of the close
        while (await scrape(hub.operator)).get("rthub_slow_clients_closed_total", 0) < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    # the room carried on for everyone else
    after = await owner.ask("chat.send", {"room": "big", "text": "after",
                                          "client_msg_id": "after"})
    seqs = [(await owner.expect("chat.message", topic="room:big"))["seq"] for _ in range(101)]
    assert seqs == [*range(1, 101), after["seq"]]  # (the stalled client's join took one)
    # the stalled client, reading again, finds the frames it was sent, then 4413
    assert await drained_close_code(stalled) == 4413
    await owner.close()


async def test_sockets_spread_over_the_gateway_replicas(hub):
    """Two replicas (the ``hub`` fixture's app) bound to one port: the kernel
    (``SO_REUSEPORT``; or Serve's proxy) gives both a share of the sockets, and a room
    reaches members on either."""
    clients = [await Client.connect(hub.url, hub.token(f"u{i}")) for i in range(16)]
    gateways = [client.welcome["content"]["gateway"] for client in clients]
    assert len(set(gateways)) == 2, gateways
    await clients[0].ask("room.create", {"room_id": "spread", "name": "spread"})
    for client in clients[1:]:
        await client.ask("room.join", {"room": "spread"})
    await clients[0].ask("chat.send", {"room": "spread", "text": "all", "client_msg_id": "a"})
    for client in clients:
        assert (await client.expect("chat.message", topic="room:spread"))["content"]["text"] \
            == "all"
    # all at once: a client left open while others leave is sent their leaves, and one that
    # reads none stops reading (its queue is full) before it sees its own close answered
    await asyncio.gather(*(client.close() for client in clients))
