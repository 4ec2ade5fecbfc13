"""ChatRoom handlers, fed messages through a plain Context: no Ray, no event loop, no storage."""

from __future__ import annotations

import msgpack
import pytest

from actors import Context
from actors.kinds.chat_events import Posted
from actors.kinds.chat_room import ChatRoom
from actors.testing import Sandbox
from rthub import config
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited

SETTINGS = config.load({"RTHUB_PRESENCE_LIMIT": "3", "RTHUB_CHAT_RATE": "1",
                        "RTHUB_CHAT_BURST": "3", "WS_HEARTBEAT_INTERVAL": "10",
                        "RTHUB_CHAT_MAX_TEXT": "50", "RTHUB_CHAT_MAX_ATTACHMENTS": "2"})


@pytest.fixture
def clock() -> Sandbox:
    return Sandbox(SETTINGS, now_ms=1_000_000)


def run(room: ChatRoom, clock: Sandbox, message_type: str, **payload) -> Context:
    """One message the way the runtime runs it: handle, then apply the events."""
    return clock.run(room, message_type, **payload)


def published(ctx: Context, event_type: str | None = None) -> list[tuple[str, dict, int | None]]:
    return [(b.type, b.content, b.seq) for b in ctx.broadcasts
            if event_type is None or b.type == event_type]


def new_room(clock: Sandbox, visibility: str = "public", owner: str = "olga", **extra) -> ChatRoom:
    room = ChatRoom(("t1", "room", "r1"))
    run(room, clock, "room.create", user=owner, name="Room", visibility=visibility, **extra)
    return room


def say(room: ChatRoom, clock: Sandbox, user: str, text: str, cid: str) -> dict:
    return run(room, clock, "chat.send", user=user, text=text, client_msg_id=cid).reply_content


# -- rooms and membership ------------------------------------------------------------------------
def test_every_stream_event_takes_the_next_seq_with_no_gap(clock):
    room = new_room(clock)
    seqs = [seq for _, _, seq in published(run(room, clock, "room.join", user="bob"))]
    seqs.append(say(room, clock, "bob", "hi", "m1")["seq"])
    ctx = run(room, clock, "chat.edit", user="bob", message_id="x", text="hello", author="bob")
    seqs += [seq for _, _, seq in published(ctx)]
    seqs += [seq for _, _, seq in published(run(room, clock, "chat.read", user="olga", seq=2))]
    assert seqs == [1, 2, 3, 4]  # the founders joined before the stream started


def test_a_private_room_admits_only_invited_users(clock):
    room = new_room(clock, "private")
    with pytest.raises(Forbidden, match="private; ask a member for an invite"):
        run(room, clock, "room.join", user="eve")
    run(room, clock, "room.invite", user="olga", target="bob")
    run(room, clock, "room.join", user="bob")
    assert room.state.members == {"olga": "owner", "bob": "member"}


def test_a_direct_room_is_the_same_room_when_created_twice_and_closed_to_others(clock):
    room = new_room(clock, "direct", members=["bob"])
    assert room.state.members == {"olga": "member", "bob": "member"}
    again = run(room, clock, "room.create", user="bob", name="x", visibility="direct",
                members=["olga"]).reply_content
    assert again == {"room_id": "r1", "existing": True}
    with pytest.raises(Forbidden, match="only its two members may join"):
        run(room, clock, "room.join", user="eve")
    with pytest.raises(Forbidden, match="exactly two members"):
        run(room, clock, "room.invite", user="olga", target="eve")
    with pytest.raises(Conflict):
        run(room, clock, "room.create", user="eve", name="x", visibility="direct",
            members=["olga"])


def test_a_direct_room_needs_exactly_one_other_member(clock):
    room = ChatRoom(("t1", "room", "r1"))
    with pytest.raises(BadRequest, match="exactly two members"):
        run(room, clock, "room.create", user="olga", name="x", visibility="direct",
            members=["bob", "carl"])


def test_only_the_owner_sets_roles_and_moderators_cannot_remove_each_other(clock):
    room = new_room(clock)
    for user in ("mia", "max", "bob"):
        run(room, clock, "room.join", user=user)
    with pytest.raises(Forbidden, match="only the room's owner may change roles"):
        run(room, clock, "room.role", user="bob", target="mia", role="moderator")
    run(room, clock, "room.role", user="olga", target="mia", role="moderator")
    run(room, clock, "room.role", user="olga", target="max", role="moderator")
    with pytest.raises(Forbidden, match="a moderator cannot remove a moderator"):
        run(room, clock, "room.kick", user="mia", target="max")
    with pytest.raises(Forbidden, match="a moderator cannot remove a owner"):
        run(room, clock, "room.kick", user="mia", target="olga")
    ctx = run(room, clock, "room.kick", user="mia", target="bob")
    assert published(ctx, "room.left")[0][1] == {"room": "r1", "user": "bob", "by": "mia"}
    assert "bob" not in room.state.members


def test_a_kicked_user_of_a_private_room_needs_a_new_invite(clock):
    room = new_room(clock, "private")
    run(room, clock, "room.invite", user="olga", target="bob")
    run(room, clock, "room.join", user="bob")
    run(room, clock, "room.kick", user="olga", target="bob")
    with pytest.raises(Forbidden):
        run(room, clock, "room.join", user="bob")


# -- messages ------------------------------------------------------------------------------------
def test_a_resent_message_gets_the_first_answer_and_publishes_nothing(clock):
    room = new_room(clock)
    first = say(room, clock, "olga", "hi", "m1")
    ctx = run(room, clock, "chat.send", user="olga", text="hi", client_msg_id="m1")
    assert ctx.reply_content == first
    assert ctx.events == []
    assert ctx.broadcasts == []


def test_message_text_never_reaches_the_log_but_reaches_the_projection(clock):
    room = new_room(clock)
    ctx = run(room, clock, "chat.send", user="olga", text="secret plans", client_msg_id="m1")
    (posted,) = [e for e in ctx.events if isinstance(e, Posted)]
    assert "secret plans" not in msgpack.packb(posted.logged()).decode("latin-1")
    assert posted.projections(room.key)[0][1]["text"] == "secret plans"


def test_limits_on_text_and_attachments_name_the_limit(clock):
    room = new_room(clock)
    with pytest.raises(BadRequest, match="text is 51 characters; the limit is 50"):
        say(room, clock, "olga", "x" * 51, "m1")
    with pytest.raises(BadRequest, match="3 attachments; the limit is 2"):
        run(room, clock, "chat.send", user="olga", text="", client_msg_id="m2",
            attachments=["a", "b", "c"])


def test_the_send_rate_is_a_token_bucket_per_user(clock):
    room = new_room(clock)
    run(room, clock, "room.join", user="bob")
    for i in range(3):  # the burst
        say(room, clock, "olga", "hi", f"m{i}")
    with pytest.raises(RateLimited) as raised:
        say(room, clock, "olga", "hi", "m3")
    assert raised.value.retry_after_ms == 1000
    say(room, clock, "bob", "unaffected", "b1")
    clock.advance(1000)
    say(room, clock, "olga", "hi", "m3")


def test_only_the_author_or_a_moderator_edits_and_deletes(clock):
    room = new_room(clock)
    run(room, clock, "room.join", user="bob")
    run(room, clock, "room.join", user="eve")
    mid = say(room, clock, "bob", "hi", "m1")["message_id"]
    with pytest.raises(Forbidden, match="only the author or a moderator"):
        run(room, clock, "chat.edit", user="eve", message_id=mid, text="x", author="bob")
    ctx = run(room, clock, "chat.edit", user="bob", message_id=mid, text="hello", author="bob")
    assert published(ctx)[0][0:2] == ("chat.edited", {
        "room": "r1", "message_id": mid, "text": "hello", "edited_by": "bob",
        "ts": "1970-01-01T00:16:40.000Z"})
    run(room, clock, "chat.delete", user="olga", message_id=mid, author="bob")
    with pytest.raises(NotFound, match="was deleted"):
        run(room, clock, "chat.edit", user="bob", message_id=mid, text="again", author="bob")


def test_read_receipts_only_move_forward(clock):
    room = new_room(clock)
    for i in range(3):
        say(room, clock, "olga", "hi", f"m{i}")
    run(room, clock, "room.join", user="bob")
    assert published(run(room, clock, "chat.read", user="bob", seq=3), "chat.read")
    ctx = run(room, clock, "chat.read", user="bob", seq=2)
    assert ctx.reply_content["read_seq"] == 3
    assert ctx.broadcasts == []
    with pytest.raises(BadRequest, match="seq must be from 1"):
        run(room, clock, "chat.read", user="bob", seq=99)


# -- typing --------------------------------------------------------------------------------------
def test_typing_is_throttled_to_one_event_per_two_seconds_and_the_last_state_wins(clock):
    room = new_room(clock)
    start = run(room, clock, "chat.typing", user="olga", typing=True)
    assert published(start, "chat.typing")[0][1:] == (
        {"room": "r1", "user": "olga", "typing": True}, None)
    clock.advance(500)
    stop = run(room, clock, "chat.typing", user="olga", typing=False)
    assert published(stop) == []
    (timer,) = stop.timers
    assert timer.delay_s == 1.5
    clock.advance(1500)
    flushed = run(room, clock, timer.message.type, **timer.message.encode())
    assert published(flushed, "chat.typing")[0][1]["typing"] is False
    assert "olga" not in room.state.typing


def test_typing_expires_after_six_seconds_without_a_refresh(clock):
    room = new_room(clock)
    ctx = run(room, clock, "chat.typing", user="olga", typing=True)
    expiry = next(t for t in ctx.timers if t.delay_s == 6)
    clock.advance(6000)
    expired = run(room, clock, expiry.message.type, **expiry.message.encode())
    assert published(expired, "chat.typing")[0][1]["typing"] is False


def test_typing_refreshed_within_six_seconds_does_not_expire(clock):
    room = new_room(clock)
    first = run(room, clock, "chat.typing", user="olga", typing=True)
    clock.advance(4000)
    run(room, clock, "chat.typing", user="olga", typing=True)
    clock.advance(2000)
    expiry = first.timers[0]
    assert published(run(room, clock, expiry.message.type, **expiry.message.encode())) == []


# -- presence ------------------------------------------------------------------------------------
def test_several_devices_are_one_presence(clock):
    room = new_room(clock)
    joined = run(room, clock, "presence.attach", user="olga", device="tab1", name="Olga")
    assert [t for t, _, _ in published(joined)] == ["presence.join"]
    assert published(run(room, clock, "presence.attach", user="olga", device="tab2")) == []
    assert published(run(room, clock, "presence.detach", user="olga", device="tab1")) == []
    listed = run(room, clock, "presence.list", user="olga").reply_content
    assert listed["members"][0]["devices"] == 1
    left = run(room, clock, "presence.detach", user="olga", device="tab2")
    assert [t for t, _, _ in published(left)] == ["presence.leave"]


def test_devices_whose_gateway_vanished_expire_after_their_lease(clock):
    room = new_room(clock)
    run(room, clock, "presence.attach", user="olga", device="tab1", name="Olga")
    run(room, clock, "presence.attach", user="olga", device="tab2", name="Olga")
    clock.advance(25_000 + 1)  # 2.5 heartbeat intervals
    swept = run(room, clock, "presence.sweep")
    assert [t for t, _, _ in published(swept)] == ["presence.leave"]
    assert room.state.present == {}


def test_a_refresh_keeps_devices_present(clock):
    room = new_room(clock)
    run(room, clock, "presence.attach", user="olga", device="tab1", name="Olga")
    clock.advance(20_000)
    run(room, clock, "presence.refresh", devices=[["olga", "tab1", "Olga"]])
    clock.advance(10_000)
    assert published(run(room, clock, "presence.sweep")) == []


def test_rooms_over_the_presence_limit_send_occupancy_counts(clock):
    room = new_room(clock)
    for user in ("a", "b", "c"):
        run(room, clock, "room.join", user=user)  # 4 members > limit 3
    ctx = run(room, clock, "presence.attach", user="a", device="d1")
    assert published(ctx) == []
    assert published(run(room, clock, "presence.attach", user="b", device="d2")) == []
    (timer,) = [t for t in ctx.timers if t.message.type == "presence.flush"]
    counted = run(room, clock, timer.message.type)
    assert published(counted) == [("presence.occupancy",
                                   {"room": "r1", "online": 2, "members": 4}, None)]


def test_leaving_ends_presence_on_every_device(clock):
    room = new_room(clock)
    run(room, clock, "room.join", user="bob")
    run(room, clock, "presence.attach", user="bob", device="d1")
    run(room, clock, "presence.attach", user="bob", device="d2")
    ctx = run(room, clock, "room.leave", user="bob")
    assert [t for t, _, _ in published(ctx)] == ["room.left", "presence.leave"]


def test_presence_is_not_checkpointed(clock):
    room = new_room(clock)
    run(room, clock, "presence.attach", user="olga", device="tab1")
    restored = ChatRoom.restore(room.key, room.snapshot())
    assert restored.state.present == {}
    assert restored.state.members == {"olga": "owner"}
