"""A poll through the real hub: the kind added by one entity file and its channel spec is
created, followed by another user's socket, voted on, closed, and refused what it should."""

from __future__ import annotations

import pytest

from tests.serve.client import Client

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)


async def test_a_poll_streams_live_counts_to_every_follower(hub):
    ana = await Client.connect(hub.url, hub.token("ana"))
    bo = await Client.connect(hub.url, hub.token("bo"))
    made = await ana.ask("poll.create", {"poll_id": "genre", "question": "Next genre?",
                                         "options": ["jazz", "house"]})
    assert (made["poll_id"], made["topic"]) == ("genre", "poll:genre")
    opened = await bo.ask("poll.open", {"poll": "genre"})
    assert (opened["options"], opened["counts"], opened["topic"]) == (
        ["jazz", "house"], [0, 0], "poll:genre")
    await bo.ask("poll.vote", {"poll": "genre", "option": 1})
    for client in (ana, bo):
        counts = await client.expect("poll.counts", topic="poll:genre")
        assert (counts["seq"], counts["content"]["counts"]) == (1, [0, 1])
    error = await bo.error_for("poll.close", {"poll": "genre"})
    assert error == {"code": "forbidden", "message": "only the poll's creator may close it"}
    error = await bo.error_for("poll.vote", {"poll": "genre", "option": 1, "user": "ana"})
    assert error["code"] == "bad_request"
    assert error["message"] == "'user' comes from your token or connection; do not send it"
    await ana.ask("poll.close", {"poll": "genre"})
    closed = await bo.expect("poll.closed", topic="poll:genre")
    assert (closed["seq"], closed["content"]["counts"]) == (2, [0, 1])
    await ana.close()
    await bo.close()
