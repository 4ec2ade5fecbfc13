"""What the runtime does for a kind, without Ray: its stream numbered, idempotent requests
answered once, what its mixins rely on checked at import, its checkpoints read across a
renamed field, and the token bucket every rate limit uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import pytest

from actors import Context, Entity, Event, Message, applies, handles
from actors.channels import Channel
from actors.kinds.members import Members
from actors.kinds.presence import PRESENCE_EVENTS, PRESENCE_MESSAGES, Presence
from actors.messages import request_key
from actors.testing import Sandbox, assert_broadcast
from rthub.bucket import TokenBucket
from rthub.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Post(Message):
    type: ClassVar[str] = "board.post"
    idempotent: ClassVar[tuple[str, ...]] = ("user", "key")
    user: str
    key: str
    twice: bool = False


@dataclass(frozen=True, slots=True)
class Posted(Event):
    user: str
    key: str
    seq: int


class Board(Entity):
    kind = "board"
    streams = True
    replies_kept = 2
    renamed: ClassVar[dict[str, str]] = {"last": "seq"}
    messages = (Post,)
    events = (Posted,)

    @dataclass(slots=True)
    class State:
        seq: int = 0
        replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @handles(Post)
    def post(self, msg: Post, ctx: Context) -> None:
        seq = 0
        for _ in range(2 if msg.twice else 1):
            seq = ctx.stream("board.posted", {"by": msg.user}, removes=None)
            ctx.emit(Posted(msg.user, msg.key, seq))
        ctx.reply({"seq": seq})

    @applies(Posted)
    def _posted(self, ev: Posted) -> None:
        self.state.seq = ev.seq
        self.remember(request_key(ev.user, ev.key), {"seq": ev.seq, "again": True})


def run(board: Board, **payload: Any) -> Context:
    ctx = Context(board.key, 0, Sandbox().settings)
    board.handle("board.post", payload, ctx)
    for event in ctx.events:
        board.apply(event)
    return ctx


def test_the_runtime_numbers_the_stream_one_past_the_last_even_within_a_handler():
    board = Board(("t", "board", "b1"))
    assert_broadcast(run(board, user="a", key="1"), "board.posted", seq=1, by="a")
    twice = run(board, user="a", key="2", twice=True)
    assert [(b.topic, b.seq) for b in twice.broadcasts] == [("board:b1", 2), ("board:b1", 3)]
    assert twice.reply_content == {"seq": 3}


def test_a_resend_gets_the_first_answer_runs_nothing_and_old_keys_are_forgotten():
    board = Board(("t", "board", "b1"))
    run(board, user="a", key="1")
    again = run(board, user="a", key="1")
    assert (again.reply_content, again.events, again.broadcasts) == (
        {"seq": 1, "again": True}, [], [])
    assert run(board, user="b", key="1").reply_content == {"seq": 2}  # keys are per user
    run(board, user="a", key="3")  # replies_kept = 2: the first key is gone
    assert run(board, user="a", key="1").reply_content == {"seq": 4}


def test_replies_survive_a_checkpoint_and_a_renamed_field_is_read_back():
    board = Board(("t", "board", "b1"))
    run(board, user="a", key="1")
    restored = Board.restore(board.key, board.snapshot())
    assert run(restored, user="a", key="1").reply_content == {"seq": 1, "again": True}
    old = msgpack.packb({"last": 7, "replies": {}})  # written when "seq" was "last"
    assert Board.restore(board.key, old).state.seq == 7


def test_what_a_kind_relies_on_is_checked_when_it_is_defined():
    with pytest.raises(TypeError, match="streams but its State has no 'seq'"):
        class NoSeq(Entity):
            kind = "noseq"
            streams = True

            @dataclass(slots=True)
            class State:
                n: int = 0

    with pytest.raises(TypeError, match="idempotent requests but its State has no 'replies'"):
        class NoReplies(Entity):
            kind = "noreplies"
            messages = (Post,)

            @dataclass(slots=True)
            class State:
                seq: int = 0

            @handles(Post)
            def post(self, msg: Post, ctx: Context) -> None:
                pass

    with pytest.raises(TypeError, match="mixes in Presence, whose State needs 'present'"):
        class NoPresence(Presence, Entity):
            kind = "nopresence"
            messages = PRESENCE_MESSAGES
            events = PRESENCE_EVENTS

            @dataclass(slots=True)
            class State:
                seq: int = 0

    with pytest.raises(TypeError, match="mixes in Presence but does not define _may_be_pr"):
        class Unsaid(Presence, Entity):
            kind = "unsaid"
            messages = PRESENCE_MESSAGES
            events = PRESENCE_EVENTS

            @dataclass(slots=True)
            class State:
                present: dict = field(default_factory=dict)
                occupancy_pending: list = field(default_factory=list)

    with pytest.raises(TypeError, match="mixes in Members, whose State needs 'members'"):
        class NoMembers(Members, Entity):
            kind = "nomembers"

            @dataclass(slots=True)
            class State:
                owner: str = ""


def test_a_channel_may_only_route_messages_its_kind_declares():
    with pytest.raises(TypeError, match=r"channel routes \['Post'\] that it does not declare"):
        class Leaky(Entity):
            kind = "leaky"
            channel = Channel("leaky", "leaky", direct=(Post,))

            @dataclass(slots=True)
            class State:
                n: int = 0


def test_the_token_bucket_refills_with_time_and_says_when_to_retry():
    bucket = TokenBucket(rate=2, burst=3)
    level = None
    for _ in range(3):
        level = bucket.take(level, 1_000, "too fast")
    with pytest.raises(RateLimited, match="too fast; retry in 500 ms") as refused:
        bucket.take(level, 1_000, "too fast")
    assert refused.value.retry_after_ms == 500
    assert bucket.take(level, 1_500, "too fast") == (0.0, 1_500)
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(rate=0, burst=1)
