"""Notifications through the real hub: sent server to server, delivered in-app on the user's
own stream to every device, kept for an offline user, tracked per channel, acked, refused
with the exact error; and the product description's Python snippet run as a process of its
own against the hub's Ray cluster."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import httpx
import pytest
import ray
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket  # module level: FastAPI reads the annotations

from cluster.ingress import free_port
from notify.service import notifier
from rthub.errors import BadRequest
from rthub.realtime import realtime_hub, websocket_endpoint
from tests.serve.client import Client

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


async def post(hub, body, token: str | None = None, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token or hub.token('svc', scopes='notify:send')}"}
    if key:
        headers["idempotency-key"] = key
    async with httpx.AsyncClient() as http:
        return await http.post(f"{hub.http}/v1/notifications", json=body, headers=headers,
                               timeout=30)


async def status(hub, ident: str) -> dict:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{hub.http}/v1/notifications/{ident}", timeout=30, headers={
            "authorization": f"Bearer {hub.token('svc', scopes='notify:send')}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_notification_reaches_every_device_and_waits_for_an_offline_one(hub):
    phone = await Client.connect(hub.url, hub.token("ana"))
    laptop = await Client.connect(hub.url, hub.token("ana"))
    for device in (phone, laptop):
        await device.ask("subscribe", {"topic": "user:ana"})
    sent = await post(hub, {"user_id": "ana", "title": "Nouvelle Chanson Ajoutée",
                            "content": "Votre ami a ajouté une chanson", "priority": "HIGH",
                            "category": "playlist", "data": {"playlist": "p1"}})
    assert sent.status_code == 202, sent.text
    ident = sent.json()["id"]
    for device in (phone, laptop):
        frame = await device.expect("notification", topic="user:ana")
        assert frame["content"]["id"] == ident
        assert (frame["content"]["title"], frame["content"]["priority"],
                frame["content"]["unread"]) == ("Nouvelle Chanson Ajoutée", 2, 1)
    seen_by = await status(hub, ident)
    assert (seen_by["status"], seen_by["channels"]["in_app"]["state"]) == ("done", "delivered")
    await phone.ask("notification.ack", {"id": ident, "state": "read"})
    update = await laptop.expect("notification.state", topic="user:ana")
    assert (update["content"]["state"], update["content"]["unread"]) == ("read", 0)
    assert (await status(hub, ident))["channels"]["in_app"]["state"] == "read"
    await phone.close()
    await laptop.close()

    offline = await post(hub, {"user_id": "bo", "title": "While you were away"})
    async with asyncio.timeout(30):  # delivered to the inbox with nobody online (polled)
        while (await status(hub, offline.json()["id"]))["status"] != "done":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    bo = await Client.connect(hub.url, hub.token("bo"))
    listed = await bo.ask("notification.list", {})
    assert ([n["title"] for n in listed["items"]], listed["unread"]) == (
        ["While you were away"], 1)
    await bo.close()


async def test_bad_requests_get_exact_errors_and_a_key_returns_the_first_result(hub):
    no_scope = await post(hub, {"user_id": "ana", "title": "x"}, token=hub.token("svc"))
    assert (no_scope.status_code, no_scope.json()["error"]) == (
        403, {"code": "forbidden", "message": "this needs the 'notify:send' scope"})
    bad = await post(hub, {"user_id": "ana", "title": "x", "priority": "URGENT"})
    assert (bad.status_code, bad.json()["error"]["message"]) == (
        400, "'priority' must be LOW, NORMAL, HIGH, CRITICAL or 0 to 3")
    unknown = await post(hub, {"user_id": "ana", "title": "x", "sound": "ping"})
    assert unknown.json()["error"]["message"] == "unknown field 'sound'"
    email = await post(hub, {"user_id": "ana", "title": "x", "channels": ["email"]})
    assert email.json()["error"]["message"] == (
        "channel 'email' is not configured on this hub (RTHUB_SMTP_URL unset); it delivers "
        "in_app")
    pigeon = await post(hub, {"user_id": "ana", "title": "x", "channels": ["pigeon"]})
    assert pigeon.json()["error"]["message"] == (
        "unknown channel 'pigeon'; channels are in_app, pusher, push, email, sms")
    many = await post(hub, {"user_ids": ["u1", "u2", "u3"], "title": "to each"}, key="k-many")
    again = await post(hub, {"user_ids": ["u1", "u2", "u3"], "title": "to each"}, key="k-many")
    assert many.status_code == 202, many.text
    assert len(set(many.json()["ids"])) == 3
    assert again.json()["ids"] == many.json()["ids"]  # the key holds for each user
    assert {(await status(hub, i))["user_id"] for i in many.json()["ids"]} == {"u1", "u2", "u3"}
    first = await post(hub, {"user_id": "ana", "title": "once"}, key="order-42")
    again = await post(hub, {"user_id": "ana", "title": "once"}, key="order-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    async with httpx.AsyncClient() as http:
        missing = await http.get(f"{hub.http}/v1/notifications/nope", headers={
            "authorization": f"Bearer {hub.token('svc', scopes='notify:send')}"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


async def test_a_template_is_rendered_in_the_locales_chain_and_a_missing_param_refused(hub):
    """The sender's locale, else the one the user chose; a missing parameter refused."""
    ana = await Client.connect(hub.url, hub.token("ana"))
    await ana.ask("subscribe", {"topic": "user:ana"})
    sent = await post(hub, {"user_id": "ana", "template": "playlist.song_added",
                            "params": {"friend": "Léa", "playlist": "Été", "count": 2},
                            "locale": "fr_CA"})
    assert sent.status_code == 202, sent.text
    frame = (await ana.expect("notification", topic="user:ana"))["content"]
    assert (frame["category"], frame["title"], frame["content"]) == (
        "playlist", "Nouvelle toune ajoutée", "Léa a ajouté 2 chansons à Été")
    await ana.ask("notification.prefs", {"locale": "fr"})  # the user's own locale
    await post(hub, {"user_id": "ana", "template": "playlist.song_added",
                     "params": {"friend": "Léa", "playlist": "Été", "count": 1}})
    frame = (await ana.expect("notification", topic="user:ana"))["content"]
    assert (frame["title"], frame["content"]) == ("Nouvelle chanson ajoutée",
                                               "Léa a ajouté une chanson à Été")
    missing = await post(hub, {"user_id": "ana", "template": "playlist.song_added",
                               "params": {"friend": "Léa", "count": 1}})
    assert (missing.status_code, missing.json()["error"]["message"]) == (
        400, "template 'playlist.song_added' needs a parameter: 'playlist' is undefined")
    await ana.close()


async def test_a_bulk_request_is_delivered_whole_and_a_bad_item_refuses_it_all(hub):
    token = hub.token("svc", scopes="notify:send")
    headers = {"authorization": f"Bearer {token}"}
    ana = await Client.connect(hub.url, hub.token("ana"))
    await ana.ask("subscribe", {"topic": "user:ana"})
    async with httpx.AsyncClient() as http:
        bad = await http.post(f"{hub.http}/v1/notifications/bulk", headers=headers, json={
            "notifications": [{"user_id": "ana", "title": "ok"}, {"user_id": "ana"}]})
        assert (bad.status_code, bad.json()["error"]["message"]) == (
            400, "notifications[1]: 'title' must be 1 to 200 characters")
        good = await http.post(f"{hub.http}/v1/notifications/bulk", headers=headers, json={
            "notifications": [{"user_id": "ana", "title": f"b{n}"} for n in range(3)]})
    assert good.status_code == 202, good.text
    ids = [a["id"] for a in good.json()["accepted"]]
    got = [(await ana.expect("notification", topic="user:ana"))["content"]["id"]
           for _ in ids]
    assert sorted(got) == sorted(ids)  # only the good batch: the bad one stored nothing
    await ana.close()


SNIPPET = textwrap.dedent('''
    import asyncio
    from rthub.realtime import realtime_hub, NotificationPriority, websocket_endpoint

    async def main():
        await realtime_hub.initialize()
        found = await realtime_hub.notification_manager.send_notification(
            user_id="user123", title="Nouvelle Chanson Ajoutée",
            content="Votre ami a ajouté une chanson à la playlist partagée",
            priority=NotificationPriority.HIGH)
        print(found["id"])

    asyncio.run(main())
''')


async def test_the_seed_snippet_runs_as_a_process_of_its_own(hub):
    await notifier(hub.settings).start.remote()  # `rthub up` starts it with the hub
    user = await Client.connect(hub.url, hub.token("user123"))
    await user.ask("subscribe", {"topic": "user:user123"})
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
           "RTHUB_NAMESPACE": hub.settings.namespace,
           "RTHUB_TENANT": hub.tenant}  # a tenant of its own: the machine's Redis outlives runs
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", SNIPPET], env=env,
                                   capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    frame = await user.expect("notification", topic="user:user123", within=30)
    assert frame["content"]["id"] == done.stdout.strip().splitlines()[-1]
    assert frame["content"]["title"] == "Nouvelle Chanson Ajoutée"
    await user.close()


async def test_websocket_endpoint_serves_the_protocol_in_the_callers_own_app(hub):
    await notifier(hub.settings).start.remote()
    await realtime_hub.initialize(namespace=hub.settings.namespace)
    app = FastAPI()

    @app.websocket("/ws/{user_id}")
    async def websocket_route(websocket: WebSocket, user_id: str) -> None:
        await websocket_endpoint(websocket, user_id)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 (uvicorn exposes no event)
                await asyncio.sleep(0.02)
        mine = await Client.connect(f"ws://127.0.0.1:{port}/ws/user123",
                                    hub.token("user123"))
        await mine.ask("subscribe", {"topic": "user:user123"})
        hub_side = await Client.connect(hub.url, hub.token("user123"))
        await hub_side.ask("subscribe", {"topic": "user:user123"})
        realtime_hub.tenant = hub.tenant
        found = await realtime_hub.notification_manager.send_notification(
            user_id="user123", title="Two doors, one hub", content="")
        with pytest.raises(BadRequest, match="'priority' must be LOW, NORMAL, HIGH, CRITICAL"):
            await realtime_hub.notification_manager.send_notification(
                user_id="user123", title="x", priority="URGENT")  # the hub's error, unwrapped
        for client in (mine, hub_side):  # a socket on the caller's app and one on the hub's
            frame = await client.expect("notification", topic="user:user123", within=30)
            assert frame["content"]["id"] == found["id"]
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await Client.connect(f"ws://127.0.0.1:{port}/ws/someone-else",
                                 hub.token("user123"))
        assert refused.value.response.status_code == 403  # the URL's user is not the token's
        await mine.close()
        await hub_side.close()
    finally:
        await realtime_hub.close()
        server.should_exit = True
        await serving


async def test_a_notifier_killed_mid_send_loses_nothing_and_shows_nothing_twice(hub):
    handle = notifier(hub.settings)
    await handle.start.remote()
    sent = [(await post(hub, {"user_id": "kim", "title": f"n{n}"})).json()["id"]
            for n in range(60)]
    ray.kill(handle, no_restart=False)  # mid-send: Ray restarts it, its claims are leased
    async with asyncio.timeout(60):
        while True:  # a call to the dying instance fails; the restarted one answers
            try:
                await handle.start.remote()
                break
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                await asyncio.sleep(0.1)  # Ray is restarting it: nothing to await
    inbox = hub.system.ref("inbox", "kim", hub.tenant)

    async def listed() -> dict:
        return await inbox.ask("notification.list", {"user": "kim", "limit": 100})

    async with asyncio.timeout(120):  # the inbox fills as the queue drains (polled)
        while len((await listed())["items"]) < len(sent):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    final = await listed()
    assert sorted(n["id"] for n in final["items"]) == sorted(sent)
    assert final["unread"] == len(sent)
