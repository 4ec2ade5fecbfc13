"""The Playlist entity and the client library together, without Ray: rules, permissions,
and randomized convergence with reordered delivery."""

from __future__ import annotations

import random

import pytest

from actors import Context
from actors.kinds.playlist import Playlist
from actors.testing import Sandbox
from client.playlist import PlaylistDoc
from rthub import config
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound

SETTINGS = config.load({})


def run(entity: Playlist, message_type: str, **payload) -> Context:
    return Sandbox(SETTINGS, now_ms=1_000).run(entity, message_type, **payload)


def ins(index: int, track: str, item_id: str) -> dict:
    return {"insert": {"index": index, "track": track, "item_id": item_id}}


@pytest.fixture
def playlist() -> Playlist:
    entity = Playlist(("t", "playlist", "p1"))
    run(entity, "playlist.create", user="olga", name="Road trip")
    run(entity, "playlist.share", user="olga", target="ed", role="editor")
    run(entity, "playlist.share", user="olga", target="vic", role="viewer")
    return entity


def submit(entity: Playlist, user: str, op: dict, base: int, seq: int, cid: str = "c1"):
    return run(entity, "playlist.op", user=user, base_version=base, client_id=cid,
               client_seq=seq, op=op).reply_content


def test_viewers_read_but_cannot_edit_and_strangers_cannot_open(playlist):
    assert run(playlist, "playlist.open", user="vic").reply_content["role"] == "viewer"
    with pytest.raises(Forbidden, match="viewers cannot change the playlist"):
        submit(playlist, "vic", ins(0, "t1", "a"), 0, 1)
    with pytest.raises(Forbidden, match="eve may not open playlist 'p1'"):
        run(playlist, "playlist.open", user="eve")
    with pytest.raises(Forbidden, match="only the playlist's owner may share it"):
        run(playlist, "playlist.share", user="ed", target="eve", role="editor")


def test_a_missing_playlist_is_not_found():
    with pytest.raises(NotFound):
        run(Playlist(("t", "playlist", "nope")), "playlist.open", user="olga")


def test_a_resent_op_gets_its_first_result(playlist):
    first = submit(playlist, "ed", ins(0, "t1", "a"), 0, 1)
    resent = run(playlist, "playlist.op", user="ed", base_version=0, client_id="c1",
                 client_seq=1, op=ins(0, "t1", "a"))
    assert resent.reply_content == {**first, "duplicate": True}
    assert resent.events == []  # not committed twice
    assert resent.broadcasts == []
    assert playlist.state.version == 1


def test_a_resent_op_that_met_a_conflict_gets_the_conflict_again(playlist):
    submit(playlist, "ed", ins(0, "song", "a"), 0, 1)
    refused = submit(playlist, "ed", ins(0, "song", "b"), 1, 2)  # no duplicates here
    assert refused == {"version": 2, "op": None,
                       "conflict": "the track is already in the playlist (no duplicates)"}
    submit(playlist, "olga", {"remove": {"item_id": "a"}}, 2, 1, "o")  # the song is gone now
    assert submit(playlist, "ed", ins(0, "song", "b"), 1, 2) == {**refused, "duplicate": True}
    restarted = Playlist.restore(playlist.key, playlist.snapshot())  # a host came back
    assert submit(restarted, "ed", ins(0, "song", "b"), 1, 2) == {**refused, "duplicate": True}
    assert restarted.state.version == 3
    assert restarted.state.items == []


def test_an_op_on_an_item_that_is_gone_is_acknowledged_with_a_new_version(playlist):
    submit(playlist, "olga", ins(0, "t1", "a"), 0, 1, "o")
    submit(playlist, "olga", ins(1, "t2", "b"), 1, 2, "o")
    submit(playlist, "olga", {"remove": {"item_id": "a"}}, 2, 3, "o")
    stale = run(playlist, "playlist.op", user="ed", base_version=2, client_id="e",
                client_seq=1, op={"move": {"item_id": "a", "to_index": 1}})  # made before
    assert stale.reply_content == {"version": 4, "op": None}
    fresh = run(playlist, "playlist.op", user="ed", base_version=4, client_id="e",
                client_seq=2, op={"remove": {"item_id": "a"}})  # nothing in between
    assert fresh.reply_content == {"version": 5, "op": None}
    for ctx, version in ((stale, 4), (fresh, 5)):
        (broadcast,) = ctx.broadcasts
        assert (broadcast.content["version"], broadcast.content["op"]) == (version, None)
    assert [i for i, _ in playlist.state.items] == ["b"]
    assert playlist.state.version == 5


def test_a_stale_op_is_transformed_and_broadcast_transformed(playlist):
    submit(playlist, "olga", ins(0, "t1", "a"), 0, 1, "o")
    submit(playlist, "olga", ins(1, "t2", "b"), 1, 2, "o")
    ctx = run(playlist, "playlist.op", user="ed", base_version=0, client_id="e", client_seq=1,
              op=ins(0, "t3", "c"))  # made before a and b existed
    (broadcast,) = ctx.broadcasts
    # aimed at the head of an empty list, like "a" and then "b": same place, item_id order
    assert broadcast.content["op"] == ins(2, "t3", "c")
    assert [i for i, _ in playlist.state.items] == ["a", "b", "c"]
    assert broadcast.content["version"] == 3


def test_a_second_insert_of_a_track_is_a_no_op_with_a_conflict_unless_allowed(playlist):
    submit(playlist, "ed", ins(0, "song", "a"), 0, 1)
    reply = submit(playlist, "ed", ins(0, "song", "b"), 1, 2)
    assert reply == {"version": 2, "op": None,
                     "conflict": "the track is already in the playlist (no duplicates)"}
    loose = Playlist(("t", "playlist", "p2"))
    run(loose, "playlist.create", user="olga", name="x", allow_duplicates=True)
    submit(loose, "olga", ins(0, "song", "a"), 0, 1)
    assert submit(loose, "olga", ins(0, "song", "b"), 1, 2)["op"] is not None


@pytest.mark.parametrize(("op", "message"), [
    ({"insert": {"index": 0, "track": "t"}}, "op.insert takes exactly index, item_id, track"),
    ({"shuffle": {}}, "unknown op 'shuffle': use insert, remove or move"),
    ({"move": {"item_id": "a", "to_index": -1}}, "op.move.to_index must be an integer >= 0"),
    ({"remove": {"item_id": "a"}, "move": {}}, "op must be exactly one of insert, remove, move"),
])
def test_malformed_ops_are_refused_with_the_reason(playlist, op, message):
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        submit(playlist, "ed", op, 0, 1)


def test_an_op_on_a_version_out_of_the_window_asks_to_reopen(playlist):
    playlist.state.recent.clear()  # as if a thousand ops went by
    playlist.state.version = 5
    with pytest.raises(Conflict, match="base_version 2 is too old"):
        submit(playlist, "ed", ins(0, "t", "a"), 2, 1)


def test_an_insert_the_server_refuses_disappears_from_the_client():
    server = Playlist(("t", "playlist", "nodup"))
    run(server, "playlist.create", user="a", name="x")  # no duplicates
    run(server, "playlist.share", user="a", target="b", role="editor")
    docs = {name: PlaylistDoc("nodup", name) for name in "ab"}
    inbox: dict[str, list] = {"a": [], "b": []}
    for name, doc in docs.items():
        doc.opened({"version": 0, "items": []})
        doc.local(ins(0, "same song", f"{name}1"))
    for name in "ab":
        serve(server, name, docs[name].next_frame(), inbox)
    for name, doc in docs.items():
        for kind, content in inbox[name]:
            (doc.acked if kind == "ack" else doc.broadcast)(content)
        assert doc.items == [("a1", "same song")], name
        assert doc.idle


def random_op(rng: random.Random, doc: PlaylistDoc, name: str, n: int) -> dict:
    ids = [i for i, _ in doc.items]
    choice = rng.random()
    if not ids or choice < 0.45:
        return ins(rng.randint(0, len(ids)), f"{name}-t{n}", f"{name}-{n}")
    if choice < 0.7:
        return {"remove": {"item_id": rng.choice(ids)}}
    return {"move": {"item_id": rng.choice(ids), "to_index": rng.randint(0, len(ids) - 1)}}


def serve(server: Playlist, sender: str, frame: dict, inbox: dict[str, list]) -> None:
    """The server takes one client frame: the ack to the sender, the op to everyone."""
    ctx = run(server, "playlist.op", user=sender,
              **{k: v for k, v in frame.items() if k != "playlist"})
    inbox[sender].append(("ack", ctx.reply_content))
    for broadcast in ctx.broadcasts:
        for name in inbox:
            inbox[name].append(("op", broadcast.content))


@pytest.mark.parametrize("seed", range(8))
def test_clients_converge_under_reordered_delivery(seed):
    """Ops reach the server in any interleaving; broadcasts and acks reach each client in any
    relative order (the stream and the reply travel separately); everyone ends equal."""
    rng = random.Random(seed)
    server = Playlist(("t", "playlist", "p"))
    run(server, "playlist.create", user="u0", name="p", allow_duplicates=True)
    names = [f"u{i}" for i in range(4)]
    for name in names[1:]:
        run(server, "playlist.share", user="u0", target=name, role="editor")
    docs = {name: PlaylistDoc("p", name) for name in names}
    for doc in docs.values():
        doc.opened({"version": server.state.version, "items": []})
    to_server: list[tuple[str, dict]] = []
    inbox: dict[str, list[tuple[str, dict]]] = {name: [] for name in names}
    for step in range(600):
        name = rng.choice(names)
        doc = docs[name]
        action = rng.random()
        if action < 0.35:
            doc.local(random_op(rng, doc, name, step))
        elif action < 0.55 and (frame := doc.next_frame()) is not None:
            to_server.append((name, frame))
        elif action < 0.75 and to_server:
            serve(server, *to_server.pop(rng.randrange(len(to_server))), inbox)
        elif inbox[name]:
            kind, content = inbox[name].pop(rng.randrange(len(inbox[name])))
            (doc.acked if kind == "ack" else doc.broadcast)(content)
    while any(not d.idle for d in docs.values()) or to_server or any(inbox.values()):
        for name, doc in docs.items():
            if (frame := doc.next_frame()) is not None:
                to_server.append((name, frame))
        while to_server:
            serve(server, *to_server.pop(0), inbox)
        for name, doc in docs.items():
            while inbox[name]:
                kind, content = inbox[name].pop(rng.randrange(len(inbox[name])))
                (doc.acked if kind == "ack" else doc.broadcast)(content)
    expected = [(i, t) for i, t in server.state.items]
    for name, doc in docs.items():
        assert doc.items == expected, (seed, name)
        assert doc.version == server.state.version


def test_adds_and_removes_are_listening_events_for_the_models(playlist):
    def listened(ctx: Context) -> list[tuple]:
        return [(r["event"], r["track"], r["user"], r["context"]) for event in ctx.events
                for name, r in event.projections(("t", "playlist", "p1")) if name == "listen"]

    added = run(playlist, "playlist.op", user="ed", base_version=0, client_id="c1",
                client_seq=1, op=ins(0, {"id": "trk-9", "title": "Nine"}, "a"))
    assert listened(added) == [("added", "trk-9", "ed", "playlist:p1")]
    moved = run(playlist, "playlist.op", user="ed", base_version=1, client_id="c1",
                client_seq=2, op={"move": {"item_id": "a", "to_index": 0}})
    assert listened(moved) == []
    removed = run(playlist, "playlist.op", user="olga", base_version=2, client_id="c2",
                  client_seq=1, op={"remove": {"item_id": "a"}})
    assert listened(removed) == [("removed", "trk-9", "olga", "playlist:p1")]
