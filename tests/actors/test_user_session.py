"""UserSession handlers, fed messages through a plain Context: no Ray, no event loop."""

import pytest

from actors import Context
from actors.kinds.user_session import UserSession
from rthub import config
from rthub.errors import BadRequest, Forbidden

SETTINGS = config.load({"MAX_WS_CONNECTIONS_PER_USER": "2"})


def send(entity: UserSession, message_type: str, now_ms: int = 1000, **payload) -> Context:
    """Run one message the way the runtime does: handle, then apply the events."""
    ctx = Context(entity.key, now_ms, SETTINGS)
    entity.handle(message_type, payload, ctx)
    for event in ctx.events:
        entity.apply(event)
    return ctx


@pytest.fixture
def session() -> UserSession:
    return UserSession(("default", "session", "alice"))


def test_first_connect_starts_the_session_with_a_resume_token(session):
    reply = send(session, "session.connect", connection_id="c1", gateway="g1").reply_content
    assert reply["session_id"]
    assert len(reply["resume_token"]) >= 32
    assert reply["evicted"] == []
    again = send(session, "session.connect", connection_id="c2", gateway="g2").reply_content
    assert again["session_id"] == reply["session_id"]
    assert again["resume_token"] == reply["resume_token"]


def test_connections_over_the_cap_evict_the_oldest_across_gateways(session):
    send(session, "session.connect", connection_id="c1", gateway="g1")
    send(session, "session.connect", connection_id="c2", gateway="g2")
    reply = send(session, "session.connect", connection_id="c3", gateway="g1").reply_content
    assert reply["evicted"] == [{"connection_id": "c1", "gateway": "g1"}]
    live = [c["connection_id"] for c in send(session, "session.get").reply_content["connections"]]
    assert live == ["c2", "c3"]


def test_resume_needs_the_token_and_rotates_it(session):
    token = send(session, "session.connect", connection_id="c1", gateway="g1"
                 ).reply_content["resume_token"]
    send(session, "session.subscribe", topic="room:lobby")
    with pytest.raises(Forbidden, match="resume token does not match"):
        send(session, "session.resume", resume_token="guess", connection_id="c2", gateway="g1")
    reply = send(session, "session.resume", resume_token=token, connection_id="c2",
                 gateway="g1").reply_content
    assert reply["subscriptions"] == ["room:lobby"]
    assert reply["resume_token"] != token
    with pytest.raises(Forbidden):  # the old token is spent
        send(session, "session.resume", resume_token=token, connection_id="c3", gateway="g1")


def test_subscriptions_keep_order_and_ignore_repeats(session):
    for topic in ("room:a", "party:b", "room:a", "user:alice"):
        send(session, "session.subscribe", topic=topic)
    send(session, "session.unsubscribe", topic="party:b")
    assert send(session, "session.get").reply_content["subscriptions"] == ["room:a", "user:alice"]


@pytest.mark.parametrize("topic", ["lobby", "chat:1", "room:", "room:" + "x" * 300])
def test_a_malformed_topic_is_refused_with_the_accepted_forms(session, topic):
    with pytest.raises(BadRequest, match=r"topic must be one of room:<id>, party:<id>"):
        send(session, "session.subscribe", topic=topic)


def test_a_refused_message_changes_nothing(session):
    ctx = Context(session.key, 0, SETTINGS)
    with pytest.raises(BadRequest):
        session.handle("session.subscribe", {"topic": "nope"}, ctx)
    assert ctx.events == []
    assert session.state == UserSession.State()


def test_replaying_the_events_rebuilds_the_same_state(session):
    log = []
    for message_type, payload in [
        ("session.connect", {"connection_id": "c1", "gateway": "g1"}),
        ("session.subscribe", {"topic": "room:a"}),
        ("session.connect", {"connection_id": "c2", "gateway": "g1", "device": "phone"}),
        ("session.disconnect", {"connection_id": "c1"}),
    ]:
        log += send(session, message_type, **payload).events
    replayed = UserSession(session.key)
    for event in log:
        replayed.apply(event)
    assert replayed.state == session.state
    assert UserSession.restore(session.key, session.snapshot()).state == session.state
