"""Security through a deployed hub: address and country rules behind a trusted proxy,
revoked tokens closing their sockets on every replica, the audit of what was refused, and
readiness that reflects the servers behind the gateway."""

import asyncio
import time
from typing import Any

import httpx
import jwt
import pytest
import websockets

from cluster.ingress import free_port
from fanout.embedded import EmbeddedRedis
from serve.gateway import GatewayCore
from serve.operator import OperatorServer
from tests.conftest import create_database
from tests.serve.client import Client
from tests.serve.conftest import app_settings
from tests.serve.geo import country_db

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def audit(hub: Any, **filters: str) -> list[dict[str, Any]]:
    """The tenant's audit entries (an admin's read), once the replicas have written them."""
    async with httpx.AsyncClient(timeout=15) as http:
        answer = await http.get(f"{hub.http}/v1/audit", params=filters,
                                headers=bearer(hub.token("root", scopes="admin")))
    assert answer.status_code == 200, answer.text
    return answer.json()["entries"]


async def eventually(read: Any, check: Any, within: float = 15) -> Any:
    """Poll ``read`` until ``check`` holds (audit rows are written in batches, off the
    request path, on whichever replica took the request)."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if check(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def close_code_of(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Open a socket the hub closes right after the upgrade: its close code and reason."""
    async with websockets.connect(url, additional_headers=headers, open_timeout=20) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_addresses_and_countries_behind_a_trusted_proxy(deploy, tmp_path):
    url, hub = await deploy(RTHUB_TRUSTED_PROXIES="127.0.0.1, ::1",
                            RTHUB_IP_DENY="192.0.2.0/24", RTHUB_GEOIP_DB=country_db(tmp_path),
                            RTHUB_GEO_DENY="KP")
    token = hub.token("olga")
    assert await close_code_of(url, bearer(token, **{"X-Forwarded-For": "192.0.2.7"})) == (
        4403, "connections from 192.0.2.7 are refused (RTHUB_IP_DENY)")
    assert await close_code_of(url, bearer(token, **{"X-Forwarded-For": "2001:db8:b::1"})) == (
        4403, "connections from KP are refused")
    # the client's own header in front of the proxy's does not hide it
    assert (await close_code_of(url, bearer(token, **{
        "X-Forwarded-For": "198.51.100.1, 203.0.113.9"})))[0] == 4403
    allowed = await Client.connect(url, token,
                                   headers={"X-Forwarded-For": "198.51.100.20"})  # FR
    async with httpx.AsyncClient(timeout=15) as http:
        refused = await http.get(f"{hub.http}/v1/search?q=x",
                                 headers=bearer(token, **{"X-Forwarded-For": "192.0.2.7"}))
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "forbidden", "message": "connections from 192.0.2.7 are refused (RTHUB_IP_DENY)"}
    rows = await eventually(lambda: audit(hub, action="ip"), lambda rows: len(rows) >= 3)
    assert {(r["ip"], r["action"]) for r in rows} >= {
        ("192.0.2.7", "ip.refused"), ("2001:db8:b::1", "ip.refused"),
        ("203.0.113.9", "ip.refused")}
    await allowed.ask("room.create", {"room_id": "fine", "name": "still serving"})
    await allowed.close()


async def test_a_revoked_token_closes_its_sockets_on_every_replica_and_is_refused(hub):
    token = hub.token("mira")
    claims = jwt.decode(token, options={"verify_signature": False})
    other_device = hub.token("mira")  # another token of the same user
    sockets = [await Client.connect(hub.url, token) for _ in range(4)]  # over two replicas
    spare = await Client.connect(hub.url, other_device)
    async with httpx.AsyncClient(timeout=15) as http:
        revoked = await http.post(f"{hub.http}/v1/tokens/revoke", headers=bearer(token), json={
            "token_id": claims["jti"], "expires_at": claims["exp"]})
        assert revoked.status_code == 200, revoked.text
        codes = await asyncio.gather(*(s.closed_with(within=hub.settings.ws_heartbeat_interval
                                                     + 10) for s in sockets))
        assert codes == [4410] * 4
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(hub.url, additional_headers=bearer(token), open_timeout=20)
        assert refused.value.response.status_code == 401
        await spare.ask("room.create", {"room_id": "r", "name": "other token still works"})
        # a user may not revoke someone else's tokens; an admin may revoke them all
        denied = await http.post(f"{hub.http}/v1/tokens/revoke",
                                 headers=bearer(hub.token("eve")), json={"user_id": "mira"})
        assert denied.status_code == 403
        everything = await http.post(f"{hub.http}/v1/tokens/revoke",
                                     headers=bearer(hub.token("root", scopes="admin")),
                                     json={"user_id": "mira"})
        assert everything.status_code == 200
    assert await spare.closed_with() == 4410
    rows = await eventually(lambda: audit(hub), lambda rows: {
        "token.revoke", "user.revoke", "auth.failed", "permission.denied"} <= {
        r["action"] for r in rows})
    by_action = {r["action"]: r for r in rows}
    assert by_action["token.revoke"]["actor"] == "mira"
    assert by_action["user.revoke"]["target"] == "mira"
    assert by_action["auth.failed"]["details"]["reason"] == "token has been revoked"
    assert by_action["permission.denied"]["actor"] == "eve"


async def test_forbidden_frames_are_audited_with_their_type(hub):
    owner = await Client.connect(hub.url, hub.token("owner"))
    await owner.ask("room.create", {"room_id": "priv", "name": "p", "visibility": "private"})
    stranger = await Client.connect(hub.url, hub.token("stranger"))
    error = await stranger.error_for("room.join", {"room": "priv"})
    assert error["code"] == "forbidden"
    rows = await eventually(lambda: audit(hub, action="permission.denied", actor="stranger"),
                            bool)
    assert rows[0]["details"]["type"] == "room.join"
    since = rows[0]["at_ms"]
    assert await audit(hub, action="permission", since=str(since + 60_000)) == []
    await owner.close()
    await stranger.close()


async def test_readiness_names_the_backend_that_does_not_answer(ray_session, embedded_pg,
                                                                 tmp_path):
    redis_server = EmbeddedRedis(tmp_path)
    settings = app_settings(await create_database(embedded_pg), redis_server.url)
    core = GatewayCore(settings)  # an in-process gateway (as ``rthub.realtime`` runs one)
    hosts = core.system.start()
    operator = OperatorServer(core, "127.0.0.1", free_port())
    port = await operator.start()
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            await asyncio.gather(*(host.stats.remote() for host in hosts))  # up, however slow
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).json()["checks"] == {
                "redis": "ok", "postgres": "ok", "ray": "ok"}
            redis_server.stop()  # Redis goes away under a running gateway
            answer = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["ready"] is False
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["ray"] == "ok"
        assert body["checks"]["redis"].startswith("ConnectionError")
        assert body["reason"].startswith("redis: ConnectionError")
    finally:
        await operator.stop()
        await core.redis.aclose()
        core.system.shutdown_hosts()
