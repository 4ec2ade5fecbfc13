"""Live analytics on a real hub: what clients do shows in /metrics and, within a flush, in
``GET /v1/admin/analytics`` (admin scope only, the token's tenant only)."""

from __future__ import annotations

import httpx

from tests.serve.admin_client import analytics_when, get_analytics, total
from tests.serve.client import Client, metrics_text
from tests.serve.conftest import Hub


def labelled(text: str, name: str) -> dict[str, float]:
    """{labels: value} of one metric family in Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            found[series[len(name):]] = float(value)
    return found


async def chat_party_and_playlist(ana: Client) -> str:
    """Four chat messages in two rooms, an error, a party with a skip and a recommended track
    added, a playlist suggestion taken; the error's code."""
    await ana.ask("room.create", {"room_id": "lobby", "name": "Lobby"})
    await ana.ask("room.create", {"room_id": "side", "name": "Side"})
    for n in range(3):
        await ana.ask("chat.send", {"room": "lobby", "text": f"hello {n}",
                                    "client_msg_id": f"m{n}"})
    await ana.ask("chat.send", {"room": "side", "text": "psst",
                                "client_msg_id": "m9"})
    code = (await ana.error_for("chat.send", {"room": "nowhere", "text": "?",
                                              "client_msg_id": "m0"}))["code"]

    await ana.ask("party.create", {"party_id": "fri", "name": "Friday"})
    for track in ("s1", "s2", "s3"):
        await ana.ask("party.queue", {"party": "fri", "op": "add", "track": track})
    await ana.ask("party.control", {"party": "fri", "action": "play"})
    await ana.ask("party.control", {"party": "fri", "action": "skip"})  # the queue runs low
    pushed = (await ana.expect("party.recommendations", topic="party:fri", within=20))
    await ana.ask("party.queue", {"party": "fri", "op": "add",
                                  "track": pushed["content"]["tracks"][0]})

    await ana.ask("playlist.create", {"playlist_id": "mix", "name": "Mix"})
    suggested = await ana.ask("playlist.suggest", {"playlist": "mix", "limit": 3})
    assert suggested["tracks"], suggested
    await ana.ask("playlist.op", {"playlist": "mix", "base_version": 0, "client_id": "a",
                                  "client_seq": 1, "op": {"insert": {
                                      "index": 0, "track": suggested["tracks"][0]["track"],
                                      "item_id": "i1"}}})
    return code


async def refusals_and_an_empty_hour(hub: Hub) -> None:
    """Only the admin scope, only a window of 1 to 60 minutes; a quiet tenant's hour is
    empty; the page is served without a token and loads only its own files."""
    refused = await get_analytics(hub, hub.token("ana"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert (await get_analytics(hub, None)).status_code == 401
    for bad in ("0", "61", "x", "1e3"):
        answer = await get_analytics(hub, hub.token("boss", scopes="admin"), f"?minutes={bad}")
        assert answer.status_code == 400, bad
    quiet = await get_analytics(hub, hub.token("boss", scopes="admin"), "?minutes=5")
    assert quiet.status_code == 200
    body = quiet.json()
    assert (body["tenant"], body["minutes"], len(body["series"])) == (hub.tenant, 5, 5)
    assert body["top"]["room"] == []
    assert total(body, lambda m: sum(m["messages"].values()) + m["connections"]) == 0

    # the page is served without a token, holds nothing, and loads only its own files
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{hub.http}/admin", timeout=30)
        script = await http.get(f"{hub.http}/admin/admin.js", timeout=30)
    assert page.status_code == 200
    assert "<h1>rthub analytics</h1>" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert "v1/admin/analytics" in script.text
    assert "http" not in page.text.replace("http-equiv", "")  # no external URL


async def test_what_clients_do_shows_in_metrics_and_the_last_hour(deploy):
    _, hub = await deploy()  # one replica: its /metrics see every socket
    await refusals_and_an_empty_hour(hub)
    admin = hub.token("boss", scopes="admin")
    ana = await Client.connect(hub.url, hub.token("ana"))
    code = await chat_party_and_playlist(ana)

    text = await metrics_text(hub.operator)
    assert labelled(text, "rthub_messages_total") == {
        '{kind="party"}': 6.0, '{kind="playlist"}': 1.0, '{kind="room"}': 4.0}
    assert labelled(text, "rthub_party_skips_total") == {"": 1.0}
    assert labelled(text, "rthub_tenant_connections") == {f'{{tenant="{hub.tenant}"}}': 1.0}
    assert labelled(text, "rthub_tenant_users") == {f'{{tenant="{hub.tenant}"}}': 1.0}
    assert labelled(text, "rthub_party_listeners") == {"": 1.0}
    assert labelled(text, "rthub_errors_total")[f'{{code="{code}"}}'] >= 1
    assert labelled(text, "rthub_recommended_tracks_added_total") == {
        '{kind="party"}': 1.0, '{kind="playlist"}': 1.0}
    # the autoscaler's figure under its own name, beside its target; hosts' queues by host
    assert labelled(text, "rthub_autoscaling_sockets") == {"": 1.0}
    assert labelled(text, "rthub_autoscaling_target_sockets_per_replica") == {"": 5000.0}
    assert labelled(text, "rthub_host_lane_delay_seconds")
    assert labelled(text, "rthub_admission_queue_limit") == {
        "": float(hub.settings.host_queue_limit)}

    def done(d: dict) -> bool:
        recs = [m["recommendations"] for m in d["series"]]
        return (total(d, lambda m: m["messages"]["room"]) == 4
                and sum(r["tracks_added"]["party"] + r["tracks_added"]["playlist"]
                        for r in recs) == 2
                and sum(r["lists_shown"]["party"] + r["lists_shown"]["playlist"]
                        for r in recs) == 2)

    data = await analytics_when(hub, admin, done)
    assert (total(data, lambda m: m["messages"]["party"]),
            total(data, lambda m: m["messages"]["playlist"])) == (6, 1)
    assert data["top"]["room"] == [{"id": "lobby", "messages": 3}, {"id": "side", "messages": 1}]
    assert data["top"]["party"] == [{"id": "fri", "messages": 6, "active_users": 1}]
    assert data["top"]["playlist"] == [{"id": "mix", "messages": 1}]
    assert data["top"]["skipped_tracks"] == [{"track": "s1", "skips": 1}]
    assert total(data, lambda m: m["skips"]) == 1
    assert total(data, lambda m: m["errors"].get(code, 0)) == 1
    assert max(m["connections"] for m in data["series"]) == 1
    assert data["distinct_users"] == 1
    assert total(data, lambda m: m["latency_ms"]["count"]) > 0
    assert any(m["latency_ms"]["p99"] is not None for m in data["series"])
    # another tenant's admin sees none of it
    other = await get_analytics(hub, hub.token("boss", tenant="elsewhere", scopes="admin"))
    assert other.json()["top"]["room"] == []

    await ana.close()
    closed = await analytics_when(hub, admin, lambda d: total(d, lambda m: m["sessions_closed"]))
    assert total(closed, lambda m: m["sessions_closed"]) == 1
    assert labelled(await metrics_text(hub.operator),
                    "rthub_session_duration_seconds_count") == {"": 1.0}
