"""The system family end to end: maintenance reaches every client of its tenant on every
replica (from ``rthub maintenance`` and from the admin route) and no one else; the gateways'
``system.*`` events land in the tenant's system stream and pass the catalog's schemas; a
gateway cut off from Redis still opens sockets, and exports their events once Redis is back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from fanout.exports import family_key
from rthub import event_catalog
from rthub.cli import main
from tests.serve.client import Client
from tests.serve.conftest import Hub
from tests.serve.test_stream_faults import Split, split  # noqa: F401  # the cut-off gateway

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


async def system_stream(redis_url: str, tenant: str, want: dict[str, int],
                        within: float = 20) -> list[event_catalog.Exported]:
    """The tenant's system stream, parsed (upcast and schema-checked), once it holds at
    least ``want[type]`` events of each type (polled with a deadline: nothing to await)."""
    client = aioredis.from_url(redis_url)
    try:
        deadline = time.monotonic() + within
        while True:
            raw = await client.xrange(family_key(tenant, "system"))
            events = [event_catalog.parse(entry_id, fields) for entry_id, fields in raw]
            counts = {t: sum(e.type == t for e in events) for t in want}
            if all(counts[t] >= n for t, n in want.items()):
                for event in events:
                    event_catalog.check(event.type, event.data)
                return events
            assert time.monotonic() < deadline, f"stream of {tenant} has {counts}, want {want}"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def on_both_replicas(hub: Hub, user: str) -> list[Client]:
    """Sockets of users ``user0``, ``user1``... (a user's sockets are capped) until both
    replicas of the app hold one (the kernel spreads new connections); every one is kept."""
    kept: list[Client] = []
    for n in range(30):
        kept.append(await Client.connect(hub.url, hub.token(f"{user}{n}")))
        if len({c.welcome["content"]["gateway"] for c in kept}) == 2:
            return kept
    raise AssertionError("every socket went to one replica")


def cli(*argv: str) -> Any:
    """``rthub`` with ``argv``; its exit status (0 when it returns)."""
    try:
        main(list(argv))
    except SystemExit as exit_:
        return exit_.code
    return 0


async def test_maintenance_reaches_every_client_of_the_tenant_on_every_replica_only(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the command (REDIS_URL set) and from the admin route: A's sockets on both
    replicas get the frame, B's does not; each announcement is in A's system stream."""
    a_clients = await on_both_replicas(hub, "ana")
    b_client = await Client.connect(hub.url, hub.token("bo", tenant=hub.tenant + "b"))
    monkeypatch.setenv("REDIS_URL", hub.settings.redis_url or "")
    status = await asyncio.to_thread(cli, "maintenance", "--message", "db upgrade",
                                     "--at", "+10m", "--duration", "30m",
                                     "--tenant", hub.tenant)
    assert status == 0
    for client in a_clients:
        frame = await client.expect("system.maintenance", has={"message": "db upgrade"})
        assert frame["content"]["duration_s"] == 1800
        assert "seq" not in frame
        assert frame["content"]["at"].endswith("Z")
        assert "timestamp" in frame

    admin = hub.token("ops", scopes="admin")
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{hub.http}/v1/admin/maintenance"
        body = {"message": "restart", "at": "now"}
        refused = await http.post(url, json=body,
                                  headers={"authorization": f"Bearer {hub.token('ana')}"})
        assert refused.status_code == 403, refused.text
        bad = await http.post(url, json={"message": "x", "at": "tomorrow"},
                              headers={"authorization": f"Bearer {admin}"})
        assert bad.status_code == 400
        assert "--at" in bad.json()["error"]["message"]
        sent = await http.post(url, json=body, headers={"authorization": f"Bearer {admin}"})
        assert sent.status_code == 202, sent.text
        assert sent.json()["gateways"] >= 2  # both replicas listen
    for client in a_clients:
        frame = await client.expect("system.maintenance", has={"message": "restart"})
        assert "duration_s" not in frame["content"]
    await b_client.ask("ping")  # it heard both announcements by now, if at all
    assert [f for f in b_client.inbox if f["type"] == "system.maintenance"] == []

    events = await system_stream(hub.settings.redis_url or "", hub.tenant,
                                 {"system.maintenance": 2})
    announced = [e.data for e in events if e.type == "system.maintenance"]
    assert [(a["message"], a["duration_s"]) for a in announced] == [("db upgrade", 1800),
                                                                      ("restart", None)]
    for client in [*a_clients, b_client]:
        await client.close()


async def test_sockets_make_connect_disconnect_and_error_events_in_their_tenants_stream(
        hub: Hub) -> None:
    client = await Client.connect(hub.url, hub.token("cy"))
    session = client.welcome["content"]["session_id"]
    failed = await client.error_for("room.join", {"room": "nowhere"})
    await client.close()  # 1000

    events = await system_stream(hub.settings.redis_url or "", hub.tenant, {
        "system.connect": 1, "system.disconnect": 1, "system.error": 1})
    by_type = {e.type: e for e in events}
    gateway = client.welcome["content"]["gateway"]
    assert by_type["system.connect"].data == {"user": "cy", "session_id": session,
                                              "gateway": gateway, "resumed": False}
    gone = by_type["system.disconnect"].data
    assert (gone["session_id"], gone["code"], gone["gateway"]) == (session, 1000, gateway)
    assert gone["duration_ms"] >= 0
    assert by_type["system.error"].data == {"user": "cy", "code": failed["code"],
                                            "message": failed["message"],
                                            "request": "room.join"}
    assert all(e.tenant == hub.tenant and e.seq is None and e.id for e in events)


async def test_a_gateway_cut_off_from_redis_opens_sockets_and_exports_their_events_later(
        split: Split) -> None:  # noqa: F811
    await split.cut.cut()
    client = await Client.connect(split.url, split.token("dee"))  # welcomed regardless
    session = client.welcome["content"]["session_id"]
    assert (await client.ask("ping"))["server_time_ms"] > 0
    await client.close()
    await split.cut.restore()  # the queue was kept: the retries now get through
    events = await system_stream(split.server.url, "t", {"system.connect": 1,
                                                          "system.disconnect": 1})
    assert {e.data["session_id"] for e in events} == {session}
