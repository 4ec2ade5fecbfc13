"""The courier on a real PostgreSQL with the real inbox entity (in the sandbox): the
fallback chain, dead tokens pruned, retries per channel and their limit, mutes, quiet hours,
CRITICAL bypass, and digests. Providers here are scripted adapters of the ``Provider``
interface; the real adapters meet their local servers in ``test_<provider>.py`` and the
whole path in ``tests/serve/test_notification_channels.py``."""

from __future__ import annotations

import asyncio
import datetime
import time
import zoneinfo

import pytest

from actors.kinds import inbox_prefs
from actors.testing import Sandbox
from notify import digest, routing
from notify.courier import MAX_ATTEMPTS, Courier
from notify.dispatcher import Dispatcher, Later
from notify.providers.base import Note, Provider, ProviderError, Target
from notify.templates import Templates
from storage import notifications as store
from storage import notify_targets
from storage.postgres import open_pool

TENANT = "t"


class Scripted(Provider):
    """An adapter that records what it sends and fails as told, per target address."""

    def __init__(self, name: str, channel: str, kinds: tuple[str, ...]) -> None:
        self.name, self.channel, self.kinds = name, channel, kinds
        self.sent: list[tuple[str | None, Note]] = []
        self.failures: dict[str | None, list[ProviderError]] = {}

    async def send(self, target: Target | None, note: Note) -> str | None:
        address = target.address if target else None
        planned = self.failures.get(address)
        if planned:
            raise planned.pop(0)
        self.sent.append((address, note))
        return "ok"


@pytest.fixture
async def pool(pg_url):
    pool = await open_pool(pg_url, 4)
    yield pool
    await pool.close()


@pytest.fixture
def providers():
    return {"fcm": Scripted("fcm", "push", ("fcm",)), "apns": Scripted("apns", "push", ("apns",)),
            "email": Scripted("smtp", "email", ("email",)),
            "sms": Scripted("twilio", "sms", ("sms",)),
            "pusher": Scripted("pusher", "pusher", ())}


@pytest.fixture
def sandbox():
    return Sandbox()


@pytest.fixture
def courier(pool, providers, sandbox):
    async def ask(tenant, user, message):
        return await sandbox.ref("inbox", user, tenant).ask(message)

    return Courier(ask, pool, list(providers.values()), Templates())


async def register(pool, user: str, kind: str, address: str) -> None:
    await notify_targets.register(pool, TENANT, user, {"kind": kind, "address": address,
                                                       "app": "default", "data": {}}, 50)


async def send(pool, courier, user: str, priority: int = 1, category: str = "social",
               channels=("in_app", "push", "email", "sms"), title: str = "Hi"):
    """Accept one notification, claim it and hand it to the courier: (row, what it said)."""
    note = {"user_id": user, "category": category, "priority": priority, "title": title,
            "body": "body", "data": {}, "idempotency_key": None, "channels": list(channels)}
    found, _ = await store.enqueue(pool, TENANT, note, 10_000)
    row = next(r for r in await store.claim(pool, 1000, 60) if r["id"] == found["id"])
    return row, await courier(row)


async def channels(pool, ident: str) -> dict[str, tuple[str, str | None]]:
    found = await store.status(pool, TENANT, ident)
    return {c: (s["state"], s["error"]) for c, s in found["channels"].items()}


async def again(pool, courier, ident: str):
    await pool.execute("UPDATE notifications SET due_at = now() WHERE id = $1", ident)
    row = next(r for r in await store.claim(pool, 1000, 60) if r["id"] == ident)
    return await courier(row)


def user(request) -> str:
    return f"u-{request.node.name[:40]}-{time.monotonic_ns()}"


async def test_one_alert_channel_is_enough_and_a_final_failure_falls_back(
        pool, courier, providers, request):
    ana = user(request)
    await register(pool, ana, "fcm", "f" * 30)
    await register(pool, ana, "email", "ana@example.com")
    providers["fcm"].failures["f" * 30] = [ProviderError("SenderId mismatch",
                                                         code="SENDER_ID_MISMATCH")]
    await register(pool, ana, "sms", "+33612345678")
    row, later = await send(pool, courier, ana)
    assert later is None
    assert await channels(pool, row["id"]) | {"in_app": None} == {
        "in_app": None,  # the inbox's own projection records it (tests/serve)
        "push": ("failed", "fcm: SENDER_ID_MISMATCH: SenderId mismatch"),
        "email": ("sent", None), "sms": ("skipped", "sent by email")}
    assert [a for a, _ in providers["email"].sent] == ["ana@example.com"]
    assert providers["sms"].sent == []


async def test_push_going_out_means_no_email_and_a_dead_token_is_pruned(
        pool, courier, providers, request):
    ana = user(request)
    await register(pool, ana, "fcm", "dead" + "f" * 30)
    await register(pool, ana, "apns", "a" * 64)
    await register(pool, ana, "email", "ana@example.com")
    providers["fcm"].failures["dead" + "f" * 30] = [
        ProviderError("Requested entity was not found.", dead_target=True, code="UNREGISTERED")]
    row, later = await send(pool, courier, ana)
    assert later is None
    states = await channels(pool, row["id"])
    assert (states["push"][0], states["email"]) == ("sent", ("skipped", "sent by push"))
    left = (await notify_targets.of_users(pool, TENANT, [ana]))[ana]
    assert sorted(t["kind"] for t in left) == ["apns", "email"]  # the dead FCM token is gone
    assert courier.pruned == 1


async def test_retryable_failures_come_back_after_the_providers_delay_then_give_up_and_fall_back(
        pool, courier, providers, request):
    ana = user(request)
    await register(pool, ana, "fcm", "g" * 30)
    await register(pool, ana, "sms", "+33612345678")
    providers["fcm"].failures["g" * 30] = [
        ProviderError("quota", retryable=True, retry_after_s=7, code="QUOTA_EXCEEDED")
        for _ in range(MAX_ATTEMPTS)]
    row, later = await send(pool, courier, ana, channels=("in_app", "push", "sms"))
    assert later == Later(7, "a provider asked to retry")  # Retry-After, not a guess
    assert (await channels(pool, row["id"]))["push"][0] == "queued"
    assert providers["sms"].sent == []  # a fallback waits while push may still work
    for _ in range(MAX_ATTEMPTS - 2):
        assert isinstance(await again(pool, courier, row["id"]), Later)
    assert await again(pool, courier, row["id"]) is None  # the 8th failure is final
    states = await channels(pool, row["id"])
    assert states["push"][0] == "failed"
    assert "QUOTA_EXCEEDED" in states["push"][1]
    assert (states["sms"][0], [a for a, _ in providers["sms"].sent]) == ("sent",
                                                                         ["+33612345678"])
    found = await store.status(pool, TENANT, row["id"])
    assert found["channels"]["push"]["attempts"] == MAX_ATTEMPTS + 1  # 8 tries + the failure


async def test_muted_channels_are_skipped_and_the_chain_moves_on(
        pool, courier, providers, sandbox, request):
    ana = user(request)
    await register(pool, ana, "fcm", "h" * 30)
    await register(pool, ana, "email", "ana@example.com")
    box = sandbox.entity("inbox", ana, TENANT)
    sandbox.run(box, "notification.prefs", user=ana, category="social", channel="push",
                enabled=False)
    row, _ = await send(pool, courier, ana, channels=("in_app", "push", "email", "pusher"))
    assert await channels(pool, row["id"]) | {"in_app": None} == {
        "in_app": None, "push": ("skipped", "muted by the user"), "email": ("sent", None),
        "pusher": ("sent", None)}
    assert providers["fcm"].sent == []


async def test_nothing_registered_is_a_skip_with_the_reason(pool, courier, request):
    row, later = await send(pool, courier, user(request))
    states = await channels(pool, row["id"])
    assert later is None
    assert {c: states[c] for c in ("push", "email", "sms")} == {
        "push": ("skipped", "no device registered"),
        "email": ("skipped", "no email address registered"),
        "sms": ("skipped", "no phone number registered")}


def quiet_now(sandbox, box, who: str) -> None:
    """Quiet hours around the present moment, in Tokyo."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo"))
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)
    sandbox.run(box, "notification.prefs", user=who, timezone="Asia/Tokyo",
                quiet_hours={"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")})


async def test_quiet_hours_hold_alerts_until_they_end_but_critical_goes_everywhere_now(
        pool, courier, providers, sandbox, request):
    ana = user(request)
    await register(pool, ana, "fcm", "i" * 30)
    await register(pool, ana, "email", "ana@example.com")
    box = sandbox.entity("inbox", ana, TENANT)
    quiet_now(sandbox, box, ana)
    sandbox.run(box, "notification.prefs", user=ana, category="social", channel="email",
                enabled=False)
    row, later = await send(pool, courier, ana)
    assert isinstance(later, Later)
    assert 3300 < later.delay_s <= 3660
    assert (await channels(pool, row["id"]))["push"][0] == "queued"
    assert box.state.items[row["id"]][6] == "new"  # in the inbox already, arrived silent
    assert providers["fcm"].sent == []
    urgent, later = await send(pool, courier, ana, priority=3)
    assert later is None
    states = await channels(pool, urgent["id"])
    assert (states["push"][0], states["email"][0]) == ("sent", "sent")  # mute ignored too


async def test_low_ones_wait_in_a_digest_and_go_out_as_one_message(
        pool, courier, providers, sandbox, request):
    ana = user(request)
    await register(pool, ana, "email", "ana@example.com")
    box = sandbox.entity("inbox", ana, TENANT)
    sandbox.run(box, "notification.prefs", user=ana, category="social",
                digest={"window_s": 3600}, locale="fr")
    rows = []
    for n in range(3):
        row, later = await send(pool, courier, ana, priority=0, title=f"like {n}",
                                channels=("in_app", "email"))
        assert later == Later(0, "in a digest", handled=True)
        rows.append(row)
    _normal, later = await send(pool, courier, ana, priority=1, channels=("in_app", "email"))
    assert later is None  # NORMAL ones are not digested unless the user said so
    assert len(providers["email"].sent) == 1
    assert len(box.state.items) == 4
    keys = {await pool.fetchval("SELECT digest_key FROM notifications WHERE id = $1", r["id"])
            for r in rows}
    assert len(keys) == 1  # one digest per user, category and window
    assert await again(pool, courier, rows[0]["id"]) is None  # its window ended
    _, sent = providers["email"].sent[-1]
    assert (sent.title, sent.body) == ("3 nouvelles notifications", "like 0\nlike 1\nlike 2")
    assert sent.data == {"digest": [r["id"] for r in rows]}
    for row in rows:
        found = await store.status(pool, TENANT, row["id"])
        assert (found["status"], found["channels"]["email"]["state"]) in {
            ("done", "sent"), ("queued", "sent")}  # the leader is finished by its dispatcher
    others = [await store.status(pool, TENANT, r["id"]) for r in rows[1:]]
    assert [o["status"] for o in others] == ["done", "done"]


def test_a_fixed_time_digest_goes_out_at_that_local_time_in_each_time_zone():
    now_ms = int(datetime.datetime(2026, 3, 29, 0, 30, tzinfo=datetime.UTC).timestamp() * 1000)
    at_8 = {"at": 8 * 60, "normal": False}
    for zone, expected_utc in (("Europe/Paris", "2026-03-29T06:00"),  # CEST began at 01:00
                               ("America/New_York", "2026-03-29T12:00"),
                               ("Asia/Tokyo", "2026-03-29T23:00")):  # 08:00 passed there
        key, due_ms = digest.slot("ana", "social", at_8, zone, now_ms)
        due = datetime.datetime.fromtimestamp(due_ms / 1000, datetime.UTC)
        assert due.strftime("%Y-%m-%dT%H:%M") == expected_utc, zone
        assert key == f"ana\x1fsocial\x1fat{due_ms}"
    window = {"window_s": 900, "normal": False}
    first, due = digest.slot("ana", "social", window, None, 1_000_000_000)
    assert digest.slot("ana", "social", window, None, due - 1) == (first, due)
    assert digest.slot("ana", "social", window, None, due)[0] != first


@pytest.mark.parametrize(("zone", "utc", "quiet"), [
    ("Europe/Paris", "2026-07-01T21:30", True),  # 23:30 in Paris
    ("America/Los_Angeles", "2026-07-01T21:30", False),  # 14:30 there
    ("Asia/Tokyo", "2026-07-01T21:30", True),  # 06:30 the next morning there
])
def test_quiet_hours_are_read_in_the_users_time_zone(zone, utc, quiet):
    prefs = {"timezone": zone, "quiet": [22 * 60, 7 * 60]}
    now = datetime.datetime.fromisoformat(utc).replace(tzinfo=datetime.UTC)
    now_ms = int(now.timestamp() * 1000)
    end = inbox_prefs.quiet_end_ms(prefs, now_ms)
    assert (end is not None) == quiet
    if end is not None:
        local_end = datetime.datetime.fromtimestamp(end / 1000, zoneinfo.ZoneInfo(zone))
        assert local_end.strftime("%H:%M") == "07:00"
        assert end > now_ms


def test_the_plan_sends_critical_everywhere_and_others_to_one_alert_channel():
    states = dict.fromkeys(("pusher", "push", "email", "sms"), "queued")
    prefs = {"mute": {"social": ["push", "pusher"]}}
    assert routing.plan(3, "social", states, prefs, {}, 0).send == ["pusher", "push", "email",
                                                                   "sms"]
    normal = routing.plan(1, "social", states, prefs, {"email": "no email address registered"},
                          0)
    assert (normal.send, normal.skip) == (["sms"], {
        "pusher": "muted by the user", "push": "muted by the user",
        "email": "no email address registered"})


async def digest_due(pool, courier, sandbox, who: str, count: int) -> list[str]:
    """``count`` LOW notifications to ``who`` held in a 10-minute digest, then its window
    made to end now; their ids."""
    await register(pool, who, "email", f"{who[:20]}@example.com")
    sandbox.run(sandbox.entity("inbox", who, TENANT), "notification.prefs", user=who,
                category="social", digest={"window_s": 600})
    ids = [(await send(pool, courier, who, priority=0, title=f"like {n}",
                       channels=("in_app", "email")))[0]["id"] for n in range(count)]
    await pool.execute("UPDATE notifications SET due_at = now() WHERE id = ANY($1::text[])", ids)
    return ids


async def dispatch_all(pool, courier, ids: list[str]) -> None:
    """Run a dispatcher claiming 4 at a time until none of ``ids`` is queued."""
    running = asyncio.create_task(Dispatcher(pool, courier, workers=2).run())
    try:
        async with asyncio.timeout(30):
            while await pool.fetchval(  # noqa: ASYNC110 (state in PostgreSQL: polled)
                    "SELECT count(*) FROM notifications WHERE id = ANY($1::text[]) AND "
                    "status = 'queued'", ids):
                await asyncio.sleep(0.05)
    finally:
        running.cancel()


async def test_a_digest_bigger_than_a_claim_is_sent_once(pool, courier, providers, sandbox,
                                                         request):
    ids = await digest_due(pool, courier, sandbox, user(request), 20)
    await dispatch_all(pool, courier, ids)  # 5 claims of 4: one digest
    assert len(providers["email"].sent) == 1
    assert providers["email"].sent[0][1].title == "20 new notifications"


async def test_message_batch_size_bounds_a_digest(pool, providers, sandbox, request):
    async def ask(tenant, user, message):
        return await sandbox.ref("inbox", user, tenant).ask(message)

    courier = Courier(ask, pool, list(providers.values()), Templates(), digest_limit=8)
    ids = await digest_due(pool, courier, sandbox, user(request), 20)
    await dispatch_all(pool, courier, ids)
    assert sorted(len(note.data["digest"]) for _, note in providers["email"].sent) == [4, 8, 8]
    sent = [i for _, note in providers["email"].sent for i in note.data["digest"]]
    assert sorted(sent) == sorted(ids)  # each in exactly one part
