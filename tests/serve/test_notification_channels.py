"""Notifications beyond in-app, through the real hub (Ray, Serve, PostgreSQL) and the real
provider adapters, each against a local server speaking its provider's contract: devices
registered over HTTP, Pusher and the alert chain (push -> email -> sms) in one send, a
provider's outage retried, a dead number pruned, and the device API's exact errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.notify.servers import pusher as pusher_server
from tests.notify.servers import twilio as twilio_server
from tests.notify.servers.pusher import PusherServer
from tests.notify.servers.twilio import TwilioServer


@pytest.fixture
async def providers():
    async with PusherServer() as pusher, TwilioServer() as twilio:
        yield pusher, twilio


@pytest.fixture
async def hub(deploy, providers):
    pusher, twilio = providers
    _, made = await deploy(
        PUSHER_APP_ID=pusher_server.APP_ID, PUSHER_KEY=pusher_server.KEY,
        PUSHER_SECRET=pusher_server.SECRET, RTHUB_PUSHER_URL=pusher.url,
        TWILIO_ACCOUNT_SID=twilio_server.ACCOUNT_SID, TWILIO_AUTH_TOKEN=twilio_server.AUTH_TOKEN,
        TWILIO_FROM="+15005550006", RTHUB_TWILIO_URL=twilio.url)
    return made


async def call(hub, method: str, path: str, token: str, body=None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.request(method, f"{hub.http}{path}", json=body, timeout=30,
                                  headers={"authorization": f"Bearer {token}"})


async def settled(hub, ident: str) -> dict:
    """The notification once the dispatcher is done with it (state in PostgreSQL: polled)."""
    service = hub.token("svc", scopes="notify:send")
    async with asyncio.timeout(60):
        while True:
            found = (await call(hub, "GET", f"/v1/notifications/{ident}", service)).json()
            if found["status"] != "queued":
                return found
            await asyncio.sleep(0.05)


async def test_one_send_reaches_pusher_and_the_first_alert_channel_the_user_has(hub, providers):
    pusher, twilio = providers
    ana = hub.token("ana")
    added = await call(hub, "POST", "/v1/devices", ana, {"kind": "sms",
                                                         "address": "+33612345678"})
    assert (added.status_code, added.json()) == (201, {"user_id": "ana", "kind": "sms",
                                                       "app": "default"})
    twilio.fail_next(503)  # an outage: retried with backoff, not lost
    service = hub.token("svc", scopes="notify:send")
    sent = await call(hub, "POST", "/v1/notifications", service, {
        "user_id": "ana", "title": "Nouvelle Chanson Ajoutée", "content": "Bo added a song",
        "priority": "HIGH", "category": "playlist"})
    assert sent.status_code == 202, sent.text
    found = await settled(hub, sent.json()["id"])
    channels = {c: (s["state"], s["attempts"]) for c, s in found["channels"].items()}
    assert channels == {"in_app": ("delivered", 0), "pusher": ("sent", 1),
                        "sms": ("sent", 2)}  # no push or email provider on this hub
    event = pusher.events[-1]
    assert (event["name"], event["channels"]) == ("notification", ["private-user-ana"])
    assert [(m["to"], m["body"]) for m in twilio.messages] == [
        ("+33612345678", "Nouvelle Chanson Ajoutée\nBo added a song")]


async def test_a_number_the_provider_calls_dead_is_pruned(hub, providers):
    _, twilio = providers
    bo = hub.token("bo")
    twilio.unsubscribed.add("+33700000000")
    for number in ("+33700000000", "+33711111111"):
        await call(hub, "POST", "/v1/devices", bo, {"kind": "sms", "address": number})
    sent = await call(hub, "POST", "/v1/notifications", hub.token("svc", scopes="notify:send"),
                      {"user_id": "bo", "title": "Hi", "channels": ["sms"]})
    found = await settled(hub, sent.json()["id"])
    assert found["channels"]["sms"]["state"] == "sent"  # the live number took it
    listed = await call(hub, "GET", "/v1/devices", bo)
    assert [d["address"] for d in listed.json()["devices"]] == ["+33711111111"]


BAD_DEVICES = [
    ({"kind": "pager", "address": "x"}, 400, "'kind' must be one of fcm, apns, webpush"),
    ({"kind": "sms", "address": "0612345678"}, 400, "'address' must be a phone number in E.164"),
    ({"kind": "email", "address": "ana@example.com"}, 400, "this hub sends no email"),
    ({"kind": "webpush", "subscription": {"endpoint": "http://push.example/x",
                                          "keys": {"p256dh": "AA", "auth": "AA"}}},
     400, "'subscription.endpoint' must be an https URL"),
    ({"kind": "sms", "address": "+33612345678", "user_id": "someone-else"}, 403,
     "this needs the 'notify:send' scope"),
]


async def test_a_bad_device_gets_the_exact_error_and_nothing_is_kept(hub):
    cy = hub.token("cy")
    for body, status, message in BAD_DEVICES:
        answer = await call(hub, "POST", "/v1/devices", cy, body)
        assert answer.status_code == status, body
        assert message in answer.json()["error"]["message"], body
    assert (await call(hub, "GET", "/v1/devices", cy)).json() == {"devices": []}
    gone = await call(hub, "DELETE", "/v1/devices", cy, {"kind": "sms",
                                                         "address": "+33612345678"})
    assert gone.status_code == 404
