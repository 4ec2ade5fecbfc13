"""The Poll kind in the kind harness: votes stream live counts, one vote per user, only the
creator closes it, and bad input is refused with nothing changed."""

from __future__ import annotations

import pytest

from actors.kinds.poll import Poll
from actors.testing import Sandbox, assert_broadcast
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
def poll(sandbox: Sandbox) -> Poll:
    poll = sandbox.entity("poll", "p1")
    sandbox.run(poll, "poll.create", user="ana", question="Next genre?",
                options=["jazz", "house", "folk"])
    return poll


def test_votes_stream_the_counts_and_a_second_vote_moves_the_first(sandbox, poll):
    assert_broadcast(sandbox.run(poll, "poll.vote", user="bo", option=1), "poll.counts",
                     seq=1, counts=[0, 1, 0])
    assert_broadcast(sandbox.run(poll, "poll.vote", user="cy", option=1), "poll.counts",
                     seq=2, counts=[0, 2, 0])
    assert_broadcast(sandbox.run(poll, "poll.vote", user="bo", option=0), "poll.counts",
                     seq=3, counts=[1, 1, 0])
    same = sandbox.run(poll, "poll.vote", user="bo", option=0)
    assert (same.broadcasts, same.events) == ([], [])  # nothing changed: nothing streamed
    opened = sandbox.run(poll, "poll.open", user="dee").reply_content
    assert (opened["counts"], opened["closed"]) == ([1, 1, 0], False)


def test_only_the_creator_closes_it_and_a_closed_poll_takes_no_vote(sandbox, poll):
    sandbox.run(poll, "poll.vote", user="bo", option=2)
    with pytest.raises(Forbidden, match="only the poll's creator"):
        sandbox.run(poll, "poll.close", user="bo")
    assert_broadcast(sandbox.run(poll, "poll.close", user="ana"), "poll.closed", seq=2,
                     counts=[0, 0, 1])
    with pytest.raises(Conflict, match="the poll is closed"):
        sandbox.run(poll, "poll.vote", user="cy", option=0)
    restored = Poll.restore(poll.key, poll.snapshot())
    assert restored.view() == poll.view()


@pytest.mark.parametrize(("payload", "error"), [
    ({"question": "", "options": ["a", "b"]}, "question must be 1 to 300 characters"),
    ({"question": "q", "options": ["a"]}, "options must be 2 to 10 texts"),
    ({"question": "q", "options": ["a", ""]}, "options must be 2 to 10 texts"),
    ({"question": "q"}, "Create: missing field 'options'"),
])
def test_a_bad_poll_is_refused_and_nothing_is_created(sandbox, payload, error):
    poll = sandbox.entity("poll", "bad")
    with pytest.raises(BadRequest, match=error):
        sandbox.run(poll, "poll.create", user="ana", **payload)
    with pytest.raises(NotFound, match="poll 'bad' does not exist"):
        sandbox.run(poll, "poll.vote", user="ana", option=0)


def test_an_option_out_of_range_is_refused(sandbox, poll):
    with pytest.raises(BadRequest, match="option must be from 0 to 2"):
        sandbox.run(poll, "poll.vote", user="bo", option=3)
    assert poll.state.votes == {}
