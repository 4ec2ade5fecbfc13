"""Notifications beyond in-app, through the real hub (Ray, Serve, PostgreSQL) and the real
provider adapters, each against a local server speaking its provider's contract: devices
registered over HTTP, Pusher and the alert chain (push -> email -> sms) in one send, a
provider's outage retried, a dead number pruned, and the device API's exact errors."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.notify.servers import pusher as pusher_server
from tests.notify.servers import twilio as twilio_server
from tests.notify.servers.pusher import PusherServer
from tests.notify.servers.smtp import MailServer
from tests.notify.servers.twilio import TwilioServer
from tests.notify.servers.webpush import PushService
from tests.serve.client import Client


@dataclass
class Providers:
    pusher: PusherServer
    sms: TwilioServer
    push: PushService
    mail: MailServer


@pytest.fixture
async def providers(tmp_path):
    async with (PusherServer() as pusher, TwilioServer() as sms, PushService() as push,
                MailServer(tmp_path) as mail):
        yield Providers(pusher, sms, push, mail)


@pytest.fixture
async def hub(deploy, providers, tmp_path):
    vapid = tmp_path / "vapid.pem"
    vapid.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    _, made = await deploy(
        PUSHER_APP_ID=pusher_server.APP_ID, PUSHER_KEY=pusher_server.KEY,
        PUSHER_SECRET=pusher_server.SECRET, RTHUB_PUSHER_URL=providers.pusher.url,
        TWILIO_ACCOUNT_SID=twilio_server.ACCOUNT_SID, TWILIO_AUTH_TOKEN=twilio_server.AUTH_TOKEN,
        TWILIO_FROM="+15005550006", RTHUB_TWILIO_URL=providers.sms.url,
        RTHUB_VAPID_KEY=str(vapid), RTHUB_VAPID_SUBJECT="mailto:ops@example.com",
        RTHUB_SMTP_URL=providers.mail.url(), RTHUB_SMTP_FROM="hub@example.com")
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


async def register(hub, token: str, body: dict) -> None:
    answer = await call(hub, "POST", "/v1/devices", token, body)
    assert answer.status_code == 201, answer.text


async def notify(hub, body: dict) -> dict:
    """Send server to server and wait until the dispatcher is done with it."""
    sent = await call(hub, "POST", "/v1/notifications", hub.token("svc", scopes="notify:send"),
                      body)
    assert sent.status_code == 202, sent.text
    return await settled(hub, sent.json()["id"])


def states(found: dict) -> dict[str, tuple[str, int]]:
    return {c: (s["state"], s["attempts"]) for c, s in found["channels"].items()}


async def test_one_send_goes_live_and_to_the_first_alert_channel_retried_through_an_outage(
        hub, providers):
    ana = hub.token("ana")
    key = (await call(hub, "GET", "/v1/devices/webpush-key", ana)).json()
    subscription = providers.push.subscribe(key["application_server_key"])
    await register(hub, ana, {"kind": "webpush", "subscription": subscription})
    await register(hub, ana, {"kind": "sms", "address": "+33612345678"})
    providers.push.fail_next(503)  # an outage: retried with backoff, not lost
    found = await notify(hub, {"user_id": "ana", "title": "Nouvelle Chanson Ajoutée",
                               "content": "Bo added a song", "priority": "HIGH",
                               "category": "playlist", "data": {"playlist": "p1"}})
    assert states(found) == {"in_app": ("delivered", 0), "pusher": ("sent", 1),
                             "push": ("sent", 2), "email": ("skipped", 0),
                             "sms": ("skipped", 0)}
    assert (found["channels"]["email"]["error"], found["channels"]["sms"]["error"]) == (
        "no email address registered", "sent by push")
    pushed = providers.push.received[-1]  # decrypted by the push service (RFC 8291)
    assert (pushed.json()["title"], pushed.json()["data"], pushed.urgency) == (
        "Nouvelle Chanson Ajoutée", {"playlist": "p1"}, "high")
    event = providers.pusher.events[-1]
    assert (event["name"], event["channels"]) == ("notification", ["private-user-ana"])
    assert providers.sms.messages == []


async def test_dead_targets_are_pruned_the_chain_falls_back_and_critical_goes_everywhere(
        hub, providers):
    bo = hub.token("bo")
    subscription = providers.push.subscribe()
    await register(hub, bo, {"kind": "webpush", "subscription": subscription})
    await register(hub, bo, {"kind": "email", "address": "bo@example.com"})
    providers.push.unsubscribe(subscription["endpoint"])  # the browser dropped it: 410
    found = await notify(hub, {"user_id": "bo", "title": "Hi", "content": "Cy follows you"})
    assert (states(found)["push"][0], states(found)["email"][0]) == ("failed", "sent")
    assert "webpush" in found["channels"]["push"]["error"]
    mail = providers.mail.messages[-1]
    assert (mail.recipients, mail.message["Subject"], mail.tls) == (["bo@example.com"], "Hi",
                                                                    True)
    listed = await call(hub, "GET", "/v1/devices", bo)
    assert [d["kind"] for d in listed.json()["devices"]] == ["email"]  # the 410 one is gone

    providers.sms.unsubscribed.add("+33700000000")
    for number in ("+33700000000", "+33711111111"):
        await register(hub, bo, {"kind": "sms", "address": number})
    await register(hub, bo, {"kind": "webpush", "subscription": providers.push.subscribe()})
    pushes, mails = len(providers.push.received), len(providers.mail.messages)
    urgent = await notify(hub, {"user_id": "bo", "title": "Party starts", "priority": 3})
    assert {c: s for c, (s, _) in states(urgent).items()} == {
        "in_app": "delivered", "pusher": "sent", "push": "sent", "email": "sent",
        "sms": "sent"}
    assert (len(providers.push.received), len(providers.mail.messages)) == (pushes + 1,
                                                                            mails + 1)
    assert [m["to"] for m in providers.sms.messages] == ["+33711111111"]
    listed = await call(hub, "GET", "/v1/devices", bo)
    assert "+33700000000" not in [d["address"] for d in listed.json()["devices"]]


BAD_DEVICES = [
    ({"kind": "pager", "address": "x"}, 400, "'kind' must be one of fcm, apns, webpush"),
    ({"kind": "sms", "address": "0612345678"}, 400, "'address' must be a phone number in E.164"),
    ({"kind": "fcm", "token": "f" * 40}, 400,
     "this hub has no fcm provider (RTHUB_FCM_CREDENTIALS is unset)"),
    ({"kind": "email", "address": "not an address"}, 400, "'address' must be an email address"),
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


async def test_a_full_queue_answers_429_and_keeps_what_it_accepted(deploy, providers):
    _, hub = await deploy(
        NOTIFICATION_QUEUE_SIZE="2", TWILIO_ACCOUNT_SID=twilio_server.ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=twilio_server.AUTH_TOKEN, TWILIO_FROM="+15005550006",
        RTHUB_TWILIO_URL=providers.sms.url)
    dee = hub.token("dee")
    await register(hub, dee, {"kind": "sms", "address": "+33612345678"})
    phone = await Client.connect(hub.url, dee)
    await phone.ask("subscribe", {"topic": "user:dee"})
    now = datetime.datetime.now(datetime.UTC)
    await phone.ask("notification.prefs", {"quiet_hours": {  # both wait for its end
        "start": (now - datetime.timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + datetime.timedelta(hours=1)).strftime("%H:%M")}})
    service = hub.token("svc", scopes="notify:send")
    held = [(await call(hub, "POST", "/v1/notifications", service,
                        {"user_id": "dee", "title": f"held {n}"})).json()["id"]
            for n in range(2)]
    refused = await call(hub, "POST", "/v1/notifications", service,
                         {"user_id": "dee", "title": "one too many", "priority": "CRITICAL"})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["retry_after_ms"]) == ("rate_limited", 1000)
    assert error["message"] == "the notification queue is full (2 waiting); retry later"
    arrived = [(await phone.expect("notification", topic="user:dee"))["content"]
               for _ in held]  # in-app at once, silent
    assert sorted((n["title"], n["silent"]) for n in arrived) == [("held 0", True),
                                                                 ("held 1", True)]
    for ident in held:
        found = (await call(hub, "GET", f"/v1/notifications/{ident}", service)).json()
        assert (found["status"], found["channels"]["sms"]["state"]) == ("queued", "queued")
    assert providers.sms.messages == []
    await phone.close()
