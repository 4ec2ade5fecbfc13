"""The Inbox kind in the harness: notifications on the user's own stream, the unread count,
states that only move forward, a dispatcher's resend adding nothing, and a bounded inbox."""

from __future__ import annotations

import pytest

from actors.kinds import inbox
from actors.testing import Sandbox, assert_broadcast
from rthub.errors import BadRequest, NotFound


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


def deliver(sandbox: Sandbox, ident: str, **extra):
    box = sandbox.entity("inbox", "ana")
    fields = {"id": ident, "category": "social", "priority": 1, "title": "Hi",
              "body": "A friend added a song", **extra}
    return sandbox.run(box, "inbox.deliver", **fields)


def test_a_notification_streams_on_the_users_topic_with_the_unread_count(sandbox):
    ctx = deliver(sandbox, "n1", data={"playlist": "p1"})
    sent = assert_broadcast(ctx, "notification", seq=1, id="n1", state="new", unread=1,
                            data={"playlist": "p1"})
    assert sent.topic == "user:ana"  # the inbox numbers the user's own stream
    assert_broadcast(deliver(sandbox, "n2"), "notification", seq=2, unread=2)


def test_a_resend_by_the_dispatcher_adds_nothing(sandbox):
    first = deliver(sandbox, "n1").reply_content
    again = deliver(sandbox, "n1")
    assert (again.reply_content, again.events, again.broadcasts) == (first, [], [])
    assert sandbox.entity("inbox", "ana").state.unread == 1


def test_states_only_move_forward_and_reading_lowers_the_unread_count(sandbox):
    deliver(sandbox, "n1")
    deliver(sandbox, "n2")
    box = sandbox.entity("inbox", "ana")
    seen = sandbox.run(box, "notification.ack", user="ana", id="n1", state="seen")
    assert_broadcast(seen, "notification.state", id="n1", state="seen", unread=2)
    read = sandbox.run(box, "notification.ack", user="ana", id="n1", state="read")
    assert_broadcast(read, "notification.state", id="n1", state="read", unread=1)
    back = sandbox.run(box, "notification.ack", user="ana", id="n1", state="seen")
    assert (back.reply_content, back.broadcasts) == ({"id": "n1", "state": "read",
                                                       "unread": 1}, [])
    listed = sandbox.run(box, "notification.list", user="ana").reply_content
    assert [(n["id"], n["state"]) for n in listed["items"]] == [("n2", "new"),
                                                                         ("n1", "read")]
    sandbox.run(box, "notification.ack", user="ana", id="n2", state="archived")
    listed = sandbox.run(box, "notification.list", user="ana").reply_content
    assert (listed["unread"], [n["id"] for n in listed["items"]]) == (0, ["n1"])
    archived = sandbox.run(box, "notification.list", user="ana", state="archived").reply_content
    assert [n["id"] for n in archived["items"]] == ["n2"]


def test_the_list_pages_back_from_a_notification_newest_first(sandbox):
    for n in range(5):
        deliver(sandbox, f"n{n}")
    box = sandbox.entity("inbox", "ana")
    page = sandbox.run(box, "notification.list", user="ana", limit=2).reply_content
    assert ([n["id"] for n in page["items"]], page["more"]) == (["n4", "n3"], True)
    rest = sandbox.run(box, "notification.list", user="ana", before="n3").reply_content
    assert ([n["id"] for n in rest["items"]], rest["more"]) == (["n2", "n1", "n0"], False)
    assert rest["items"][0]["content"] == "A friend added a song"  # PROTOCOL.md's fields
    with pytest.raises(BadRequest, match="limit must be from 1 to 100"):
        sandbox.run(box, "notification.list", user="ana", limit=101)


def test_bad_acks_are_refused_and_change_nothing(sandbox):
    deliver(sandbox, "n1")
    box = sandbox.entity("inbox", "ana")
    with pytest.raises(BadRequest, match="state must be one of seen, read, archived"):
        sandbox.run(box, "notification.ack", user="ana", id="n1", state="new")
    with pytest.raises(NotFound, match=r"no notification 'nope' in your inbox"):
        sandbox.run(box, "notification.ack", user="ana", id="nope", state="read")
    assert box.state.unread == 1


def test_the_inbox_keeps_the_newest_and_counts_what_it_keeps(sandbox, monkeypatch):
    monkeypatch.setattr(inbox, "KEPT", 3)
    for n in range(5):
        deliver(sandbox, f"n{n}")
    box = sandbox.entity("inbox", "ana")
    assert (list(box.state.items), box.state.unread) == (["n2", "n3", "n4"], 3)


def prefs(sandbox: Sandbox, **changes):
    return sandbox.run(sandbox.entity("inbox", "ana"), "notification.prefs", user="ana",
                       **changes)


def test_preferences_are_set_read_back_and_cleared_by_null(sandbox):
    prefs(sandbox, category="marketing", channel="email", enabled=False)
    set_ = prefs(sandbox, locale="fr_CA", timezone="Europe/Paris",
                 quiet_hours={"start": "22:00", "end": "07:00"},
                 category="marketing", channel="in_app", enabled=False).reply_content
    assert set_ == {"locale": "fr_CA", "timezone": "Europe/Paris",
                    "quiet_hours": {"start": "22:00", "end": "07:00"},
                    "mute": {"marketing": ["email", "in_app"]}, "digest": {}}
    on_again = prefs(sandbox, category="marketing", channel="email", enabled=True)
    assert on_again.reply_content["mute"] == {"marketing": ["in_app"]}
    assert prefs(sandbox).reply_content == {**set_, "mute": {"marketing": ["in_app"]}}
    box = sandbox.entity("inbox", "ana")
    cleared = sandbox.run(box, inbox.Preferences.decode(
        inbox.Preferences.from_wire({"user": "ana", "quiet_hours": None}))).reply_content
    assert (cleared["quiet_hours"], cleared["locale"]) == (None, "fr_CA")


def test_digests_are_set_per_category_and_cleared_by_null(sandbox):
    prefs(sandbox, category="social", digest={"window_s": 900})
    both = prefs(sandbox, category="news", digest={"at": "08:30", "normal": True}).reply_content
    assert both["digest"] == {"social": {"window_s": 900, "normal": False},
                              "news": {"at": "08:30", "normal": True}}
    assert both["mute"] == {}  # a digest alone toggles no channel
    box = sandbox.entity("inbox", "ana")
    cleared = sandbox.run(box, inbox.Preferences.decode(inbox.Preferences.from_wire(
        {"user": "ana", "category": "social", "digest": None}))).reply_content
    assert cleared["digest"] == {"news": {"at": "08:30", "normal": True}}


@pytest.mark.parametrize(("changes", "error"), [
    ({"timezone": "Mars/Olympus"}, "'timezone' must be an IANA time zone"),
    ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "'quiet_hours' must be"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "'quiet_hours' must be"),
    ({"category": "marketing", "channel": "carrier-pigeon", "enabled": False},
     "'channel' must be one of in_app, push, email, sms, pusher"),
    ({"category": "marketing", "channel": "email"}, "'enabled' must be true or false"),
    ({"locale": "../etc"}, "'locale' must look like"),
    ({"category": "social", "digest": {"window_s": 10}}, "'digest.window_s' must be"),
    ({"category": "social", "digest": {"at": "8h"}}, "'digest.at' must be a time"),
    ({"category": "social", "digest": {"window_s": 60, "at": "08:00"}}, "'digest' must be"),
    ({"digest": {"window_s": 600}}, "'digest' goes with 'category'"),
])
def test_bad_preferences_are_refused_and_change_nothing(sandbox, changes, error):
    with pytest.raises(BadRequest, match=error):
        prefs(sandbox, **changes)
    assert sandbox.entity("inbox", "ana").state.prefs == {}


def test_a_muted_category_is_skipped_but_a_critical_one_always_arrives(sandbox):
    prefs(sandbox, category="marketing", channel="in_app", enabled=False)
    muted = deliver(sandbox, "n1", category="marketing")
    assert (muted.reply_content, muted.broadcasts) == ({"skipped": "muted"}, [])
    assert [type(e).__name__ for e in muted.events] == ["Skipped"]
    assert deliver(sandbox, "n1", category="marketing").events == []  # a resend: nothing
    critical = deliver(sandbox, "n2", category="marketing", priority=3)
    assert_broadcast(critical, "notification", id="n2", silent=False)


@pytest.mark.parametrize(("zone", "priority", "silent"), [
    ("Europe/Paris", 1, True),  # 23:30 there: inside 22:00-07:00
    ("America/New_York", 1, False),  # 17:30 there
    ("Europe/Paris", 3, False),  # CRITICAL: never silent
])
def test_quiet_hours_are_read_in_the_users_time_zone(sandbox, zone, priority, silent):
    sandbox.now_ms = 1_796_250_600_000  # 2026-12-02 22:30 UTC
    prefs(sandbox, timezone=zone, quiet_hours={"start": "22:00", "end": "07:00"})
    assert_broadcast(deliver(sandbox, "n1", priority=priority), "notification", silent=silent)
