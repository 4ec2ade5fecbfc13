"""UserSession handlers, fed messages through a plain Context: no Ray, no event loop."""

import pytest

from actors import Context
from actors.kinds.user_session import UserSession
from rthub import config
from rthub.errors import BadRequest, Forbidden

SETTINGS = config.load({"MAX_WS_CONNECTIONS_PER_USER": "2", "RTHUB_STREAM_RETENTION_S": "120"})


def send(entity: UserSession, message_type: str, now_ms: int = 1000, **payload) -> Context:
    """Run one message the way the runtime does: handle, then apply the events."""
    ctx = Context(entity.key, now_ms, SETTINGS)
    entity.handle(message_type, payload, ctx)
    for event in ctx.events:
        entity.apply(event)
    return ctx


def connect(entity: UserSession, connection_id: str, gateway: str = "g1") -> dict:
    return send(entity, "session.connect", connection_id=connection_id,
                gateway=gateway).reply_content


@pytest.fixture
def session() -> UserSession:
    return UserSession(("default", "session", "alice"))


def test_each_connection_gets_its_own_resume_token_in_one_session(session):
    first, second = connect(session, "c1"), connect(session, "c2", "g2")
    assert first["session_id"] == second["session_id"]
    assert len(first["resume_token"]) >= 32
    assert first["resume_token"] != second["resume_token"]


def test_connections_over_the_cap_evict_the_oldest_across_gateways(session):
    connect(session, "c1", "g1")
    connect(session, "c2", "g2")
    assert connect(session, "c3", "g1")["evicted"] == [{"connection_id": "c1", "gateway": "g1"}]
    live = [c["connection_id"] for c in send(session, "session.get").reply_content["connections"]]
    assert live == ["c2", "c3"]


def test_resume_restores_topics_and_positions_once(session):
    token = connect(session, "c1")["resume_token"]
    send(session, "session.follow", connection_id="c1", topic="room:lobby")
    send(session, "session.follow", connection_id="c1", topic="user:alice")
    send(session, "session.disconnect", connection_id="c1",
         positions={"room:lobby": ["ep1", 41]})
    with pytest.raises(Forbidden, match="resume token is unknown, spent or expired"):
        send(session, "session.resume", resume_token="guess", connection_id="c2", gateway="g1")
    reply = send(session, "session.resume", resume_token=token, connection_id="c2",
                 gateway="g1").reply_content
    assert reply["positions"] == {"room:lobby": ["ep1", 41], "user:alice": None}
    assert reply["resume_token"] != token
    view = send(session, "session.get").reply_content
    assert view["connections"][0]["topics"] == ["room:lobby", "user:alice"]
    with pytest.raises(Forbidden):  # spent
        send(session, "session.resume", resume_token=token, connection_id="c3", gateway="g1")


def test_a_resume_resent_after_its_host_died_gets_the_same_answer(session):
    """The gateway asks again when the host died mid-call (outcome unknown): the resume had
    taken place, so the resend is answered as it was, not refused as a spent token."""
    log = []

    def logged(message_type: str, **payload) -> dict:
        ctx = send(session, message_type, **payload)
        log.extend(ctx.events)
        return ctx.reply_content

    token = logged("session.connect", connection_id="c1", gateway="g1")["resume_token"]
    logged("session.follow", connection_id="c1", topic="room:lobby")
    logged("session.disconnect", connection_id="c1", positions={"room:lobby": ["ep1", 41]})
    first = logged("session.resume", resume_token=token, connection_id="c2", gateway="g1")
    replayed = UserSession(session.key)  # the host restarts: the state comes from the log
    for event in log:
        replayed.apply(event)
    again = send(replayed, "session.resume", resume_token=token, connection_id="c2",
                 gateway="g1")
    assert again.reply_content == {**first, "evicted": []}
    assert again.events == []  # nothing happens twice
    with pytest.raises(Forbidden):  # another connection still cannot use the spent token
        send(replayed, "session.resume", resume_token=token, connection_id="c3",
             gateway="g1")


def test_a_resume_token_expires_with_the_stream_window(session):
    token = connect(session, "c1")["resume_token"]
    send(session, "session.disconnect", now_ms=1000, connection_id="c1")
    with pytest.raises(Forbidden):
        send(session, "session.resume", now_ms=1000 + 121_000, resume_token=token,
             connection_id="c2", gateway="g1")


def test_follow_keeps_order_and_ignores_repeats(session):
    connect(session, "c1")
    for topic in ("room:a", "party:b", "room:a", "user:alice"):
        send(session, "session.follow", connection_id="c1", topic=topic)
    send(session, "session.unfollow", connection_id="c1", topic="party:b")
    topics = send(session, "session.get").reply_content["connections"][0]["topics"]
    assert topics == ["room:a", "user:alice"]


@pytest.mark.parametrize("topic", ["lobby", "chat:1", "room:", "room:" + "x" * 300])
def test_a_malformed_topic_is_refused_with_the_accepted_forms(session, topic):
    connect(session, "c1")
    with pytest.raises(BadRequest, match=r"topic must be one of room:<id>, party:<id>"):
        send(session, "session.follow", connection_id="c1", topic=topic)


def test_a_refused_message_changes_nothing(session):
    ctx = Context(session.key, 0, SETTINGS)
    with pytest.raises(BadRequest, match="connection 'ghost' is not open"):
        session.handle("session.follow", {"connection_id": "ghost", "topic": "room:a"}, ctx)
    assert ctx.events == []
    assert session.state == UserSession.State()


def test_replaying_the_events_rebuilds_the_same_state(session):
    log = []
    for message_type, payload in [
        ("session.connect", {"connection_id": "c1", "gateway": "g1"}),
        ("session.follow", {"connection_id": "c1", "topic": "room:a"}),
        ("session.connect", {"connection_id": "c2", "gateway": "g1", "device": "phone"}),
        ("session.disconnect", {"connection_id": "c1", "positions": {"room:a": ["e", 3]}}),
    ]:
        log += send(session, message_type, **payload).events
    replayed = UserSession(session.key)
    for event in log:
        replayed.apply(event)
    assert replayed.state == session.state
    assert UserSession.restore(session.key, session.snapshot()).state == session.state
