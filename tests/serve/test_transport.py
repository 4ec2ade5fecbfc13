"""Connecting, auth, encodings, limits, heartbeat, caps: PROTOCOL.md on real sockets."""

import json
import time

import jwt
import pytest
import websockets

from tests.serve.client import Client, metrics_text
from tests.serve.conftest import DIRECT_INGRESS as DIRECT
from tests.serve.conftest import SECRET

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


def refused_status(url: str, headers: dict[str, str]) -> int:
    async def attempt() -> int:
        try:
            await websockets.connect(url, additional_headers=headers, open_timeout=20)
        except websockets.InvalidStatus as refused:
            return refused.response.status_code
        raise AssertionError("the upgrade was accepted")

    return attempt()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BAD_TOKENS = {
    "absent": lambda hub: {},
    "not a JWT": lambda hub: bearer("not-a-jwt"),
    "expired": lambda hub: bearer(hub.token("alice", ttl_s=-60)),
    "signed with another key": lambda hub: bearer(
        jwt.encode({"sub": "alice", "exp": time.time() + 60}, "x" * 40, algorithm="HS256")),
    "unsigned (alg none)": lambda hub: bearer(
        jwt.encode({"sub": "alice", "exp": time.time() + 60}, None, algorithm="none")),
    "without sub": lambda hub: bearer(
        jwt.encode({"exp": time.time() + 60}, SECRET, algorithm="HS256")),
    "without exp": lambda hub: bearer(jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")),
}


# On the replica's own port a bad token is answered 401 with the reason; Serve's proxy
# answers every refused upgrade 403.
UNAUTHORIZED = 401 if DIRECT else 403


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_a_bad_token_never_gets_an_open_socket(hub, case):
    assert await refused_status(hub.url, BAD_TOKENS[case](hub)) == UNAUTHORIZED
    good = await Client.connect(hub.url, hub.token("alice"))  # the gateway carried on
    assert good.welcome["content"]["user_id"] == "alice"
    await good.close()


async def test_the_user_in_the_path_must_be_the_tokens_subject(hub):
    assert await refused_status(f"{hub.url}/bob", bearer(hub.token("alice"))) == 403
    mine = await Client.connect(f"{hub.url}/alice", hub.token("alice"))
    await mine.close()


async def test_a_browser_can_pass_the_token_in_the_query(hub):
    client = await Client.connect(hub.url, query=f"?token={hub.token('carol')}")
    assert client.welcome["content"]["user_id"] == "carol"
    assert client.welcome["content"]["tenant"] == hub.tenant
    await client.close()


async def test_msgpack_clients_get_the_same_envelope_in_binary_frames(hub):
    packed = await Client.connect(hub.url, hub.token("alice"), binary=True)
    plain = await Client.connect(hub.url, hub.token("bob"))
    assert packed.ws.subprotocol == "rthub.msgpack.v1"
    await packed.ask("room.create", {"room_id": "bin", "name": "bin"})
    await plain.ask("room.join", {"room": "bin"})
    sent = await plain.ask("chat.send", {"room": "bin", "text": "héllo", "client_msg_id": "1"})
    frame = await packed.expect("chat.message", topic="room:bin")
    assert frame["content"]["text"] == "héllo"
    assert frame["seq"] == sent["seq"]
    await packed.close()
    await plain.close()


async def test_malformed_frames_get_bad_request_and_twenty_in_a_minute_close_4400(hub):
    client = await Client.connect(hub.url, hub.token("alice"))
    bystander = await Client.connect(hub.url, hub.token("bob"))
    await client.send_raw("{not json")
    error = await client.expect("error")
    assert error["content"]["code"] == "bad_request"
    assert error["content"]["message"].startswith("frame is not valid JSON")
    await client.send_raw(json.dumps({"id": 7, "content": {}}))
    error = await client.expect("error", ref=7)
    assert error["content"] == {"code": "bad_request",
                                "message": "'type' must be a dotted lowercase name such as "
                                           "'chat.send'"}
    assert (await client.ask("ping"))["server_time_ms"] > 0  # still open and serving
    for _ in range(18):
        await client.send_raw("[]")
    assert await client.closed_with() == 4400
    assert (await bystander.ask("ping"))["server_time_ms"] > 0
    await bystander.close()


async def test_an_oversized_frame_is_too_large_and_the_socket_stays_open(hub):
    client = await Client.connect(hub.url, hub.token("alice"))
    await client.send_raw(json.dumps({"type": "ping", "content": {"pad": "x" * 70_000}}))
    error = await client.expect("error")
    assert error["content"]["code"] == "too_large"
    assert "over the 65536-byte limit" in error["content"]["message"]
    assert (await client.ask("ping"))["server_time_ms"] > 0
    await client.close()


async def test_an_unknown_type_and_a_bad_payload_are_answered_with_ref(hub):
    client = await Client.connect(hub.url, hub.token("alice"))
    assert await client.error_for("nope.nothing") == {
        "code": "bad_request", "message": "unknown message type 'nope.nothing'"}
    await client.ask("room.create", {"room_id": "r", "name": "r"})
    error = await client.error_for("chat.send", {"room": "r", "text": 5, "client_msg_id": "1"})
    assert error == {"code": "bad_request", "message": "Send: field 'text' has the wrong type"}
    error = await client.error_for("chat.send", {"room": "r", "text": "x" * 4001,
                                                 "client_msg_id": "2"})
    assert error["message"] == "text is 4001 characters; the limit is 4000"
    await client.close()


async def test_over_the_per_user_cap_the_oldest_connection_is_closed_4409(hub):
    clients = [await Client.connect(hub.url, hub.token("dave")) for _ in range(5)]
    sixth = await Client.connect(hub.url, hub.token("dave"))
    assert await clients[0].closed_with() == 4409
    for survivor in (*clients[1:], sixth):
        assert (await survivor.ask("ping"))["server_time_ms"] > 0
    for client in (*clients[1:], sixth):
        await client.close()


async def test_time_ping_answers_with_server_receive_and_send_times(hub):
    client = await Client.connect(hub.url, hub.token("alice"))
    frame_id = await client.send("time.ping", {"t0": 123})
    pong = await client.expect("time.pong", ref=frame_id)
    assert pong["content"]["t0"] == 123
    assert pong["content"]["t1"] <= pong["content"]["t2"]
    await client.close()


async def test_a_silent_client_is_closed_4408_after_two_heartbeats(deploy):
    url, hub = await deploy(WS_HEARTBEAT_INTERVAL="1")
    started = time.monotonic()  # before the upgrade: the hub's silence clock starts at open
    silent = await Client.connect(url, hub.token("quiet"))
    assert silent.welcome["content"]["heartbeat_s"] == 1
    assert await silent.closed_with(within=20) == 4408
    assert time.monotonic() - started >= 2 * 1 - 0.1  # two intervals (0.1: clock reads)


async def test_a_client_that_answers_pings_stays(deploy):
    # 2 s: a pong that a starved test loop sends a second late still lands within the 4 s
    # the hub allows; three pings are still past two intervals of the first
    url, hub = await deploy(WS_HEARTBEAT_INTERVAL="2")
    client = await Client.connect(url, hub.token("chatty"))
    for _ in range(3):
        await client.expect("ping", within=5)
        await client.send("pong")
    assert (await client.ask("ping"))["server_time_ms"] > 0
    await client.close()


async def test_replicas_going_away_close_sockets_with_1012(deploy):
    url, hub = await deploy()
    client = await Client.connect(url, hub.token("alice"))
    await hub.undeploy()
    assert await client.closed_with(within=30) == 1012


async def test_metrics_are_served_in_prometheus_text(deploy):
    url, hub = await deploy()  # one replica: the scrape sees this socket's counters
    client = await Client.connect(url, hub.token("alice"))
    await client.ask("ping")
    text = await metrics_text(hub.operator)
    assert "rthub_connections " in text
    assert 'rthub_frames_in_total{type="ping"}' in text
    await client.close()


async def test_a_fragmented_message_is_reassembled_and_bad_utf8_is_a_bad_request(hub):
    client = await Client.connect(hub.url, hub.token("alice"))
    await client.ws.send(['{"type": "time.ping", ', '"id": 5, "content": ', '{"t0": 7}}'])
    pong = await client.expect("time.pong", ref=5)
    assert pong["content"]["t0"] == 7
    await client.ws.send(b'{"type": "ping", "id": "\xff"}', text=True)  # not UTF-8
    error = await client.expect("error")
    assert error["content"]["code"] == "bad_request"
    assert error["content"]["message"].startswith("frame is not valid JSON")
    assert (await client.ask("ping"))["server_time_ms"] > 0  # still open and serving
    await client.close()
