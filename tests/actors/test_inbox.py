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
    assert [(n["id"], n["state"]) for n in listed["notifications"]] == [("n2", "new"),
                                                                         ("n1", "read")]
    sandbox.run(box, "notification.ack", user="ana", id="n2", state="archived")
    listed = sandbox.run(box, "notification.list", user="ana").reply_content
    assert (listed["unread"], [n["id"] for n in listed["notifications"]]) == (0, ["n1"])


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
