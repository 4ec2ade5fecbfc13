"""A token proves who is on a socket until its ``exp``: the hub closes the socket then (4401
"token expired") unless the client sent ``session.refresh`` with a fresh token of the same
user and tenant; a refresh that fails changes nothing."""

from __future__ import annotations

import asyncio
import time

import pytest

from serve.auth import LEEWAY_S
from tests.serve.client import Client

pytestmark = pytest.mark.one_backend

# The hub keeps a socket until exp + leeway, then closes it on its next tick. 8 s of that:
# room for connect, refresh, ping and a twin's upgrade on a loaded machine (2 s was not).
HUB_LIFE_S = 8


def short_lived(hub, user: str) -> str:
    """A token the hub accepts for about HUB_LIFE_S more seconds, then closes sockets of."""
    return hub.token(user, exp=int(time.time()) + HUB_LIFE_S - LEEWAY_S)


async def closed_with(client: Client, within: float = 30) -> tuple[int | None, str | None]:
    await asyncio.wait_for(client.ws.wait_closed(), within)
    return client.ws.close_code, client.ws.close_reason


async def test_a_socket_is_closed_4401_when_its_token_expires_and_others_carry_on(hub):
    ana = await Client.connect(hub.url, short_lived(hub, "ana"))
    bo = await Client.connect(hub.url, hub.token("bo"))
    assert await closed_with(ana) == (4401, "token expired")
    room = await bo.ask("room.create", {"name": "still here"})
    assert (await bo.ask("chat.send", {"room": room["room_id"], "text": "hi",
                                       "client_msg_id": "m1"}))["seq"] >= 1
    await bo.ws.close()


async def test_a_refreshed_socket_outlives_its_first_token(hub):
    old = short_lived(hub, "ana")
    kept = await Client.connect(hub.url, old)
    fresh = hub.token("ana", ttl_s=600)
    answer = await kept.ask("session.refresh", {"token": fresh})
    assert answer["exp"] > (await kept.ask("ping"))["server_time_ms"] / 1000 + 500
    # a twin on the old token: the tick that closes it would have closed `kept` too
    twin = await Client.connect(hub.url, old)
    assert await closed_with(twin) == (4401, "token expired")
    room = await kept.ask("room.create", {"name": "refreshed"})
    assert room["room_id"]
    await kept.ws.close()


async def test_a_refresh_that_fails_changes_nothing(hub):
    ana = await Client.connect(hub.url, short_lived(hub, "ana"))
    assert await ana.error_for("session.refresh", {"token": hub.token("bo")}) == {
        "code": "forbidden",
        "message": "session.refresh needs a token of the socket's own user and tenant"}
    assert await ana.error_for("session.refresh", {
        "token": hub.token("ana", tenant="elsewhere")}) == {
        "code": "forbidden",
        "message": "session.refresh needs a token of the socket's own user and tenant"}
    assert await ana.error_for("session.refresh", {"token": "not a jwt"}) == {
        "code": "unauthorized", "message": "token is not a well-formed JWT"}
    assert await ana.error_for("session.refresh", {
        "token": hub.token("ana", ttl_s=-60)}) == {
        "code": "unauthorized", "message": "token has expired"}
    assert await ana.error_for("session.refresh", {}) == {
        "code": "bad_request",
        "message": "session.refresh needs a 'token' (a JWT of the socket's own user)"}
    assert (await ana.ask("ping"))["server_time_ms"] > 0  # still open, and still the old token
    assert await closed_with(ana) == (4401, "token expired")
