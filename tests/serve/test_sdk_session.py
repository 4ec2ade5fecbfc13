"""The Python SDK's session against the real hub: tokens, requests, drops and resumes."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from client import Hub, HubError
from client.messages import ACKS, parse
from client.tokens import token_exp
from fanout.streams import epoch_key, stream_key
from serve.auth import LEEWAY_S
from tests.serve.client import Client
from tests.serve.sdk import drop, next_event, sdk_hubs, until

pytestmark = pytest.mark.one_backend  # the SDK's behaviour: one backend pair (conftest)

# a token the hub keeps a socket on for about 3 s: it adds a leeway to exp (serve.auth)
HUB_LIFE_3_S = 3 - LEEWAY_S


async def room(connect, owner: str, room_id: str, *members: str) -> list:
    """SDK hubs for ``owner`` and ``members``, all in room ``room_id``."""
    hubs = [await connect(owner)]
    await hubs[0].request("room.create", {"room_id": room_id, "name": room_id})
    for member in members:
        hubs.append(await connect(member))
        await hubs[-1].request("room.join", {"room": room_id})
    return hubs


def record(seqs: list[int]):
    """An ``on_event`` that keeps the seq of each chat message."""
    return lambda content, frame: frame["type"] == "chat.message" and seqs.append(frame["seq"])


async def say(sdk, room_id: str, *texts: str) -> list[int]:
    return [(await sdk.request("chat.send", {"room": room_id, "text": t,
                                             "client_msg_id": t}))["seq"] for t in texts]


async def test_a_provider_gives_the_token_of_every_connect_and_a_fresh_one_before_exp(hub):
    issued: list[str] = []

    async def provider() -> str:  # tokens valid 4 s, refreshed 3 s before their exp
        issued.append(hub.token("ana", ttl_s=4))
        return issued[-1]

    async with sdk_hubs(hub) as connect:
        sdk = await connect("ana", token=provider, token_refresh_margin_s=3)
        refreshed = asyncio.create_task(next_event(sdk, "refreshed"))
        assert len(issued) == 1
        assert sdk.session["user_id"] == "ana"
        ack, = await refreshed  # the open socket took the second token...
        assert ack["exp"] == token_exp(issued[1])
        assert time.time() < token_exp(issued[0]) + LEEWAY_S  # ...before the hub closed it
        resumed = asyncio.create_task(next_event(sdk, "resumed"))
        drop(sdk)
        await resumed
        assert len(issued) >= 3  # the reconnect asked the provider again
        assert (await sdk.request("ping"))["server_time_ms"] > 0


async def test_a_provider_keeps_one_socket_open_past_its_first_tokens_exp(hub):
    async def provider() -> str:  # 4-second tokens: renewed at half their life
        return hub.token("ana", ttl_s=4)

    async with sdk_hubs(hub) as connect:
        sdk = await connect("ana", token=provider)
        session_id = sdk.session["session_id"]
        first_exp = token_exp(sdk._tokens.current)
        acks: list[dict] = []
        drops: list[dict] = []
        sdk.on("refreshed", acks.append)
        sdk.on("disconnect", drops.append)
        # the hub would close the first token's socket at exp + leeway, on its next tick
        closes_at = first_exp + LEEWAY_S + 2
        await until(lambda: time.time() > closes_at, sdk, "refreshed", within=60)
        assert (await sdk.request("ping"))["server_time_ms"] / 1000 > closes_at
        assert drops == []
        assert (sdk.state, sdk.session["session_id"]) == ("open", session_id)
        assert len(acks) >= 3
        assert acks[-1]["exp"] == token_exp(sdk._tokens.current)


async def test_a_socket_closed_on_its_expired_token_resumes_with_a_providers_fresh_one(hub):
    issued: list[str] = []

    async def provider() -> str:
        issued.append(hub.token("ana", ttl_s=HUB_LIFE_3_S if len(issued) == 0 else 600))
        if len(issued) == 2:  # the renewal: fails, and is past exp for any retry
            raise RuntimeError("the identity provider is down")
        return issued[-1]

    async with sdk_hubs(hub) as connect:
        sdk = await connect("ana", token=provider)
        session_id = sdk.session["session_id"]
        gone = asyncio.create_task(next_event(sdk, "disconnect"))
        resumed = asyncio.create_task(next_event(sdk, "resumed"))
        assert (await gone)[0] == {"code": 4401, "reason": "token expired"}
        await resumed
        assert (sdk.state, sdk.session["session_id"]) == ("open", session_id)
        assert len(issued) == 3
        assert (await sdk.request("ping"))["server_time_ms"] > 0


async def test_a_static_token_that_expires_closes_the_hub_for_good(hub):
    async with sdk_hubs(hub) as connect:
        sdk = await connect("ana", token=hub.token("ana", ttl_s=HUB_LIFE_3_S))
        errors: list[HubError] = []
        sdk.on("error", errors.append)
        gone = asyncio.create_task(next_event(sdk, "disconnect"))
        assert (await gone)[0] == {"code": 4401, "reason": "token expired"}
        await until(lambda: sdk.state == "closed", sdk, "state")
        assert [e.code for e in errors] == ["closed"]
        assert "4401 token expired" in errors[0].message
        with pytest.raises(HubError) as closed:
            await sdk.request("ping")
        assert closed.value.code == "closed"


async def test_a_refused_token_fails_connect_and_is_not_retried(hub):
    async with sdk_hubs(hub) as connect:
        with pytest.raises(HubError) as refused:
            await connect("ana", token="not-a-jwt")
        assert refused.value.code == "unauthorized"


async def test_a_chat_round_trip_arrives_typed_and_once(hub):
    async with sdk_hubs(hub) as connect:
        ana, bo = await room(connect, "ana", "r", "bo")
        got = asyncio.create_task(next_event(bo, "chat.message"))
        sent = parse("chat.send", await ana.request(
            "chat.send", {"room": "r", "text": "hi", "client_msg_id": "m1"}), ACKS)
        content, frame = await got
        message = parse("chat.message", content)
        assert (message["text"], message["sender"], frame["seq"]) == ("hi", "ana", sent["seq"])
        assert frame["topic"] == "room:r"


async def test_msgpack_frames_both_ways_with_a_json_member_and_across_a_resume(hub):
    async with sdk_hubs(hub) as connect:
        ana = await connect("ana")  # JSON
        bo = await connect("bo", encoding="msgpack")
        assert bo._ws.subprotocol == "rthub.msgpack.v1"
        await ana.request("room.create", {"room_id": "mp", "name": "mp"})
        await bo.request("room.join", {"room": "mp"})
        seen: list[int] = []
        await bo.subscribe("room:mp", on_event=record(seen))
        heard = asyncio.create_task(next_event(ana, "chat.message"))
        sent = await bo.request("chat.send", {"room": "mp", "text": "é🎵 in msgpack",
                                              "client_msg_id": "m1"})
        content, _ = await heard  # a msgpack sender heard by a JSON member
        assert (content["text"], content["message_id"]) == ("é🎵 in msgpack",
                                                            sent["message_id"])
        await until(lambda: len(seen) == 1, bo, "chat.message")
        restored = asyncio.create_task(next_event(bo, "subscribed"))
        drop(bo)
        missed = await say(ana, "mp", "x", "y")
        assert (await restored)[0]["recovered"] is True
        await until(lambda: len(seen) == 3, bo, "chat.message")
        assert seen == [sent["seq"], *missed]
        assert bo._ws.subprotocol == "rthub.msgpack.v1"
        # every frame went through the msgpack codec, which refuses text frames: the acks and
        # events above came binary, and so does a 64-bit integer
        assert (await bo.request("time.ping", {"t0": 2**40}))["t0"] == 2**40


def test_an_encoding_the_sdk_does_not_speak_is_refused_at_once():
    with pytest.raises(ValueError, match="encoding must be 'json' or 'msgpack', not 'cbor'"):
        Hub("ws://127.0.0.1:1/ws", "token", encoding="cbor")


async def test_requests_are_pipelined_up_to_max_in_flight_and_keep_their_order(hub):
    async with sdk_hubs(hub) as connect:
        ana, = await room(connect, "ana", "pipe")
        limit = ana.session["max_in_flight"]
        peak = 0
        acquire = ana._slots.acquire

        async def counted() -> None:
            nonlocal peak
            await acquire()
            peak = max(peak, ana._slots.used)

        ana._slots.acquire = counted
        count = limit + 16
        acks = await asyncio.gather(*(ana.request("chat.send", {
            "room": "pipe", "text": str(n), "client_msg_id": f"p{n}"}, timeout_s=60)
            for n in range(count)))
        assert peak == limit  # many at once, never more than the hub allows
        seqs = [ack["seq"] for ack in acks]
        assert seqs == sorted(seqs)  # one room: handled in the order sent
        assert len(set(seqs)) == count


async def test_errors_carry_their_code_and_timeouts_and_drops_have_their_own(hub):
    async with sdk_hubs(hub) as connect:
        ana = await connect("ana")
        with pytest.raises(HubError) as unknown:
            await ana.request("no.such.type", {})
        assert unknown.value.code == "bad_request"
        with pytest.raises(HubError) as forbidden:
            await ana.request("chat.send", {"room": "not-mine", "text": "x",
                                            "client_msg_id": "x"})
        assert forbidden.value.code in ("forbidden", "not_found")
        with pytest.raises(HubError) as silent:
            await ana.request("pong", {}, timeout_s=1)  # the hub never answers a pong
        assert silent.value.code == "timeout"

        unanswered = asyncio.create_task(ana.request("pong", {}, timeout_s=60))
        await ana.request("ping")  # answered after the pong went out on the same socket
        drop(ana)
        with pytest.raises(HubError) as cut:
            await unanswered
        assert cut.value.code == "disconnected"
        # made while the socket is down: waits for the next one
        assert ana.state != "open"
        assert (await ana.request("ping"))["server_time_ms"] > 0


async def test_a_dropped_socket_resumes_with_replay_and_no_duplicates(hub):
    async with sdk_hubs(hub) as connect:
        ana, bo = await room(connect, "ana", "res", "bo")
        seen: list[int] = []
        sub = await bo.subscribe("room:res", on_event=record(seen))
        first = await say(ana, "res", "a", "b", "c")
        await until(lambda: len(seen) == 3, bo, "chat.message")
        restored = asyncio.create_task(next_event(bo, "subscribed"))
        drop(bo)
        missed = await say(ana, "res", "d", "e", "f")
        content, _ = await restored
        assert content["recovered"] is True
        assert bo.state == "open"
        await until(lambda: len(seen) == 6, bo, "chat.message")
        assert seen == first + missed  # the hub replays from its last confirmed point:
        assert sub.seq == missed[-1]   # repeats of a, b, c were dropped by seq


async def test_a_session_resumed_elsewhere_stops_here_and_a_spent_token_starts_afresh(hub):
    gate = asyncio.Event()
    gate.set()

    async def gated() -> str:  # the test decides when bo may reconnect
        await gate.wait()
        return hub.token("bo")

    async with sdk_hubs(hub) as connect:
        ana, bo = await room(connect, "ana", "spent", "bo")
        # Another socket resumes the session bo holds: bo is replaced (4409) and stays down.
        taken = asyncio.create_task(next_event(bo, "disconnect"))
        thief = await Client.connect(hub.url, hub.token("bo"),
                                     query=f"?resume={bo.session['resume_token']}")
        gone, = await taken
        assert gone["code"] == 4409
        await until(lambda: bo.state == "closed", bo, "state")
        await thief.close()

        bo = await connect("bo", token=gated)
        await bo.request("room.join", {"room": "spent"})
        seen: list[int] = []
        await bo.subscribe("room:spent", on_event=record(seen))
        first = await say(ana, "spent", "a")
        await until(lambda: len(seen) == 1, bo, "chat.message")
        gate.clear()
        drop(bo)  # bo waits for its token; meanwhile its resume token is spent elsewhere
        thief = await Client.connect(hub.url, hub.token("bo"),
                                     query=f"?resume={bo.session['resume_token']}")
        await thief.close()
        missed = await say(ana, "spent", "b")
        restored = asyncio.create_task(next_event(bo, "subscribed"))
        gate.set()  # refused (4403) -> a fresh session -> `subscribe since` its position
        content, _ = await restored
        assert content["recovered"] is True
        assert bo.session["resumed"] is False
        await until(lambda: len(seen) == 2, bo, "chat.message")
        assert seen == first + missed


async def test_a_lost_stream_calls_on_reload(hub):
    async with sdk_hubs(hub) as connect:
        ana, bo = await room(connect, "ana", "lost", "bo")
        reloads: list[dict] = []
        seen: list[int] = []
        await bo.subscribe("room:lost", on_event=record(seen),
                           on_reload=reloads.append)
        await say(ana, "lost", "a")
        await until(lambda: len(seen) == 1, bo, "chat.message")
        # Redis loses the topic's stream and epoch (a restart without persistence)
        redis = aioredis.from_url(hub.settings.redis_url)
        await redis.delete(stream_key(hub.tenant, "room:lost"),
                           epoch_key(hub.tenant, "room:lost"))
        await redis.aclose()
        lost = asyncio.create_task(next_event(bo, "subscribed"))
        drop(bo)
        content, _ = await lost
        assert content["recovered"] is False
        assert reloads == [{"topic": "room:lost", "epoch": content["epoch"],
                            "seq": content["seq"]}]
        # The stream restarts past seqs it never had: the gateway sees the skip and says so
        # again (recovered: false) rather than deliver a gap; what follows flows live.
        later = await say(ana, "lost", "b", "c")
        await until(lambda: max(seen[-1], reloads[-1]["seq"]) >= later[-1], bo,
                    "chat.message subscribed")
        assert all(r["epoch"] == content["epoch"] for r in reloads)
        history = await bo.request("chat.history", {"room": "lost"})  # what a reload reads
        assert [m["text"] for m in history["messages"]][-3:] == ["a", "b", "c"]
        last = await say(ana, "lost", "d")
        await until(lambda: seen[-1] == last[0], bo, "chat.message")
        assert seen == sorted(set(seen))  # never a repeat
